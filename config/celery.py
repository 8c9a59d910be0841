"""The Celery app: `celery -A config.celery worker` / `celery -A config.celery beat`."""

import os

from celery import Celery
from django.conf import settings

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
