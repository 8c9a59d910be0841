import os
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from config import env, instance

# Read by gunicorn and the Procfile, which would fail on a bad value with a traceback.
PROCESS_COUNTS = {"WEB_CONCURRENCY": 2, "WEB_THREADS": 4, "POOLWARDEN_WORKERS": 4}


class Command(BaseCommand):
    help = (
        "What `make run` runs: take this var/ folder's lock, migrate, create the first admin, "
        "write the schedules, then become honcho running web, worker and beat (Procfile)."
    )

    def handle(self, *args, **options):
        for name, default in PROCESS_COUNTS.items():
            env.get_int(name, default, minimum=1)
        try:
            instance.lock(settings.VAR_DIR, "run", inheritable=True)
        except instance.AlreadyRunning as exc:
            raise CommandError(str(exc), returncode=2) from None
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin")
        call_command("sync_schedules")
        listen = os.environ.get("POOLWARDEN_LISTEN") or "127.0.0.1:8000"
        self.stdout.write(
            f"Poolwarden: http://{listen}/admin/  (Ctrl-C stops web, worker and beat)"
        )
        self.stdout.flush()
        bin_dir = Path(sys.executable).parent
        honcho = shutil.which("honcho", path=str(bin_dir)) or shutil.which("honcho")
        if honcho is None:
            raise CommandError("honcho is missing: run `make run` (it installs it)", returncode=2)
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        os.chdir(settings.BASE_DIR)  # the Procfile's folder
        # exec keeps the pid and the lock's descriptor: the lock lives as long as honcho does.
        os.execv(honcho, [honcho, "start"])
