import os

from django.core.asgi import get_asgi_application

from config.startup import config_errors_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
with config_errors_exit():
    application = get_asgi_application()
