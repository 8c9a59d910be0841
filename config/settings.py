"""Poolwarden settings. Everything comes from the environment; see the README's
"Configuration" section for the list of variables and their defaults."""

from __future__ import annotations

import secrets
from pathlib import Path

from config import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.get_str("POOLWARDEN_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env.get_bool("DEBUG", True)


def _secret_key() -> str:
    key = env.get_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise env.ConfigError("SECRET_KEY: required when DEBUG=0 (production mode)")
    # Development only: one random key per var/ directory, so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        env.writable_dir(VAR_DIR, why="the development SECRET_KEY (SECRET_KEY unset)")
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise env.ConfigError("ALLOWED_HOSTS: required when DEBUG=0 (production mode)")
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "routing",
    "reputation",
]

MIDDLEWARE = [
    "routing.middleware.JsonErrorsMiddleware",  # first: it turns API errors of all below to JSON
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "reputation.dashboard.zones.ZoneMiddleware",  # the viewer's time zone (pw_tz cookie)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", VAR_DIR / "poolwarden.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": env.cache("CACHE_URL")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.get_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.get_str("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
STATICFILES_DIRS = [BASE_DIR / "reputation" / "dashboard" / "static"]  # the dashboard's own
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
WHITENOISE_USE_FINDERS = DEBUG  # development: no collectstatic needed
if DEBUG:  # whitenoise warns when it is missing
    env.writable_dir(STATIC_ROOT, why="static files", variable="STATIC_ROOT")

# Email (alerts): EMAIL_URL, or Django's own EMAIL_* variables.
EMAIL_HOST = env.get_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.get_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env.get_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.get_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.get_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env.get_bool("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.get_str("DEFAULT_FROM_EMAIL", "poolwarden@localhost")
# Seconds an SMTP connect or reply may take: a silent relay must fail well within the alert
# claim lease (5 min), or the alert would be claimed again and sent twice (system check).
EMAIL_TIMEOUT = env.get_float("EMAIL_TIMEOUT", 30.0)
SERVER_EMAIL = DEFAULT_FROM_EMAIL
globals().update(env.email("EMAIL_URL"))

# Celery: the embedded default is kombu's filesystem transport under var/, which needs no
# server; CELERY_BROKER_URL=redis://... (or amqp://...) for several hosts.
_broker = env.broker("CELERY_BROKER_URL")
if _broker is None:
    _queue = VAR_DIR / "broker"
    for _folder in ("processed", "control"):
        env.writable_dir(_queue / _folder, why="the embedded broker (CELERY_BROKER_URL unset)")
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue),
        "data_folder_out": str(_queue),
        "processed_folder": str(_queue / "processed"),
        "control_folder": str(_queue / "control"),  # else "control/" in the working directory
        "store_processed": False,
    }
    _default_results = f"file://{VAR_DIR / 'results'}"
    env.writable_dir(VAR_DIR / "results", why="task results (CELERY_RESULT_BACKEND unset)")
else:
    CELERY_BROKER_URL = _broker
    _default_results = _broker if _broker.startswith(("redis://", "rediss://")) else None
    # A task whose worker died unacknowledged (late ack) goes back to the queue after this.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.get_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        "unacked_restore_throttle": 1,  # look for such tasks every 10 s, not every 100 s
    }
CELERY_RESULT_BACKEND = env.get_str("CELERY_RESULT_BACKEND", _default_results)
CELERY_TASK_IGNORE_RESULT = True  # tasks that return something opt in
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Resolvers for sender-domain and blocklist queries ("host" or "host:port"); [] = system.
POOLWARDEN_NAMESERVERS = env.nameservers("POOLWARDEN_NAMESERVERS")
POOLWARDEN_DNS_TIMEOUT = env.get_float("POOLWARDEN_DNS_TIMEOUT", 3.0)
POOLWARDEN_DNS_CACHE_SIZE = env.get_int("POOLWARDEN_DNS_CACHE_SIZE", 100_000)
POOLWARDEN_POLICY_REFRESH = env.get_float("POOLWARDEN_POLICY_REFRESH", 10.0)
# Routing processes reload the policy and token snapshot in a background thread, so a
# decision never waits on the database (tests turn it off and load in their own thread).
POOLWARDEN_REFRESH_IN_BACKGROUND = True
POOLWARDEN_FLUSH_INTERVAL = env.get_float("POOLWARDEN_FLUSH_INTERVAL", 10.0)
POOLWARDEN_API_MAX_BYTES = env.get_int("POOLWARDEN_API_MAX_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = POOLWARDEN_API_MAX_BYTES
# Blocklist sweeps: queries in flight per sweep, seconds between scheduled sweeps, chunk delay.
POOLWARDEN_DNSBL_WINDOW = env.get_int("POOLWARDEN_DNSBL_WINDOW", 100)
POOLWARDEN_SWEEP_INTERVAL = env.get_int("POOLWARDEN_SWEEP_INTERVAL", 1800, minimum=1)
POOLWARDEN_SWEEP_JITTER = env.get_int("POOLWARDEN_SWEEP_JITTER", 120, minimum=0)
# DSN history: per-minute counts kept this many days (detection compares up to 31 days back),
# then rolled up into hourly counts kept this many days.
POOLWARDEN_DSN_MINUTE_DAYS = env.get_int("POOLWARDEN_DSN_MINUTE_DAYS", 32)
POOLWARDEN_DSN_HOURLY_DAYS = env.get_int("POOLWARDEN_DSN_HOURLY_DAYS", 400)
# Message-IDs routed here are remembered this long (hashed; Redis or the database, shared by
# every process): a DSN about one of them is not backscatter.
POOLWARDEN_ROUTED_MEMORY_HOURS = env.get_int("POOLWARDEN_ROUTED_MEMORY_HOURS", 72, minimum=1)
# Alerts: links in alerts point here; a listing reopened within this many seconds of its
# closing is flapping and not alerted again.
POOLWARDEN_BASE_URL = env.get_str("POOLWARDEN_BASE_URL", "http://127.0.0.1:8000")
POOLWARDEN_FLAP_SECONDS = env.get_int("POOLWARDEN_FLAP_SECONDS", 6 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.get_str("LOG_LEVEL", "INFO")},
}

# Production hardening (DEBUG=0): `manage.py check --deploy` is clean with these.
if not DEBUG:
    SECURE_SSL_REDIRECT = env.get_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env.get_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.get_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env.get_bool("SECURE_HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env.get_bool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SILENCED_SYSTEM_CHECKS = ["security.W021"] if not SECURE_HSTS_PRELOAD else []
