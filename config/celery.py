"""The Celery app: `celery -A config.celery worker` / `celery -A config.celery beat`."""

import os
import sys

from celery import Celery
from celery.signals import beat_init, worker_init
from django.conf import settings

from config import instance
from config.startup import config_errors_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Load settings now, so that a bad variable stops `celery worker` or `celery beat` with
# one line instead of a traceback from deep inside Celery. (Django imports this module from
# RoutingConfig.ready(), after settings, so that tasks sent from the web use this app.)
with config_errors_exit():
    settings.INSTALLED_APPS  # noqa: B018

app = Celery("poolwarden")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="poolwarden.ping", ignore_result=False)
def ping(token: str) -> dict:
    """Answer from a worker: proves the broker, the worker and the result store work."""
    return {
        "token": token,
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": settings.CELERY_BROKER_URL.split("://", 1)[0],
    }


def _hold(role: str) -> None:
    """This var/ folder's `role` lock for the process's life, or one line and exit 2."""
    try:
        instance.lock(settings.VAR_DIR, role)
    except instance.AlreadyRunning as exc:
        # sys.__stderr__: beat has redirected sys.stderr into its logger by now.
        print(f"poolwarden: {exc}", file=sys.__stderr__, flush=True)
        os._exit(2)  # Celery would catch SystemExit and log a traceback


@beat_init.connect
def _one_beat_per_var_dir(sender=None, **kwargs) -> None:
    _hold("beat")  # two beats send every periodic task twice


@worker_init.connect
def _one_worker_per_embedded_broker(sender=None, **kwargs) -> None:
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        _hold("worker")  # with Redis or RabbitMQ, run as many workers as you like
