import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the first admin account when no superuser exists. The password comes from "
        "POOLWARDEN_ADMIN_PASSWORD, or is generated and printed once."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("POOLWARDEN_ADMIN_USER") or "admin"
        password = os.environ.get("POOLWARDEN_ADMIN_PASSWORD")
        User.objects.create_superuser(
            username, "", password or (generated := secrets.token_urlsafe(12))
        )
        if password:
            self.stdout.write(f"Admin account {username!r} created with POOLWARDEN_ADMIN_PASSWORD.")
        else:
            self.stdout.write(
                f"Admin account created. Log in at /admin/ as {username!r} with password "
                f"{generated}\n(shown only now: change it after logging in)."
            )
