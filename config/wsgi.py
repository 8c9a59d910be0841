import os

from django.core.wsgi import get_wsgi_application

from config.startup import config_errors_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
with config_errors_exit():
    application = get_wsgi_application()
