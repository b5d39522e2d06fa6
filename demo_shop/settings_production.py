"""The demo shop's production settings: ``DJANGO_SETTINGS_MODULE=demo_shop.settings_production``.

Everything secret or site-specific comes from the environment, and a missing value is an error at start-up
rather than an insecure default:

- ``DJANGO_SECRET_KEY`` (required, at least 50 characters),
- ``DJANGO_ALLOWED_HOSTS`` (required, comma-separated),
- ``DJANGO_CSRF_TRUSTED_ORIGINS`` (optional, comma-separated ``https://`` origins),
- ``DATABASE_URL``, ``REDIS_URL``, ``CELERY_BROKER_URL`` as in :mod:`demo_shop.settings`,
- ``DJANGO_SECURE_SSL_REDIRECT`` (default 1; 0 when a proxy in front already redirects),
- ``DJANGO_BEHIND_PROXY`` (default 0; 1 trusts ``X-Forwarded-Proto: https`` from the proxy).

``python manage.py check --deploy`` is clean with these settings (tested in tests/reliability/test_deploy.py).
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_DEBUG", "0")

from demo_shop.settings import *  # noqa: F403
from demo_shop.settings import SHOP_RECO


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"Set {name} in the environment for demo_shop.settings_production.")
    return value


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default) == "1"


DEBUG = False
SECRET_KEY = _required("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-"):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random string of at least 50 characters.")
ALLOWED_HOSTS = [host.strip() for host in _required("DJANGO_ALLOWED_HOSTS").split(",") if host.strip()]
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

# HTTPS only: redirect, HSTS for a year (subdomains and preload), cookies never sent over plain HTTP.
SECURE_SSL_REDIRECT = _flag("DJANGO_SECURE_SSL_REDIRECT", "1")
if _flag("DJANGO_BEHIND_PROXY", "0"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 31_536_000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# shop_reco's visitor cookie follows the session cookie: HTTPS only.
SHOP_RECO = {**SHOP_RECO, "VISITOR_COOKIE_SECURE": True}

# Errors to the log, never to the page.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"shop_reco": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
