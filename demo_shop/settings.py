"""Demo shop settings.

Embedded default: SQLite and Celery in eager mode, nothing to install. Set DATABASE_URL (e.g.
postgres://postgres@127.0.0.1:5432/shop_reco_demo) and CELERY_BROKER_URL / REDIS_URL (redis://127.0.0.1:6379/0)
to run on PostgreSQL with a real Celery worker and the Redis event buffer.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BASE_DIR.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-shop-insecure-key-change-me-in-production-0123456789")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "shop_reco",
    "demo_shop.catalogue",
    "demo_shop.cart",
    "demo_shop.orders",
    "demo_shop.accounts",
]
try:  # the OpenAPI schema is optional for shops; the demo shows it when installed
    import drf_spectacular  # noqa: F401

    INSTALLED_APPS.append("drf_spectacular")
except ImportError:  # pragma: no cover
    pass

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "shop_reco.middleware.TrackingMiddleware",
]

ROOT_URLCONF = "demo_shop.urls"
WSGI_APPLICATION = "demo_shop.wsgi.application"

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
                "demo_shop.cart.context_processors.cart",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{PROJECT_DIR / 'demo_shop.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or None
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
# Without a broker, tasks run in-process: the embedded default needs no worker.
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Requests queue tasks (a cart change refreshes that shopper's lists): with the broker down, give up within
# about a second instead of blocking the page on Celery's default retries.
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# Queueing a task also subscribes to its result; the Redis result backend would retry that for ~20 s.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": CELERY_TASK_PUBLISH_RETRY_POLICY}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 1

# Read before SHOP_RECO is defined, so the defaults are used; shops may pass their own cadences.
from shop_reco.schedules import default_beat_schedule  # noqa: E402

CELERY_BEAT_SCHEDULE = default_beat_schedule()

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

SHOP_RECO = {
    "PRODUCT_MODEL": "catalogue.Product",
    "ADAPTER": "demo_shop.catalogue.adapter.DemoShopAdapter",
    "PRODUCT_VIEW_URL_NAMES": ("catalogue:product",),
    "EVENT_BUFFER_URL": REDIS_URL,
    # With the Redis buffer, each web process writes the events of a finished response (impressions, views)
    # to a local spool file and a thread ships them to Redis in batches (shop_reco.tracking.spool).
    "EVENT_SPOOL_DIR": (os.environ.get("SHOP_RECO_SPOOL_DIR") or str(PROJECT_DIR / "var" / "spool"))
    if REDIS_URL
    else None,
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "catalogue:home"
LOGOUT_REDIRECT_URL = "catalogue:home"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = PROJECT_DIR / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"shop_reco": {"handlers": ["console"], "level": "INFO"}},
}
