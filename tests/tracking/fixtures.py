"""Fixtures of the tracking and beacon tests: a tiny shop, services, a private redis-server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core.cache import cache

from shop_reco.tracking import buffer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
def tracking_state(settings) -> Iterator[None]:
    """Each test starts with the test shop's URLs, no buffer, a closed breaker and an empty throttle cache."""
    settings.ROOT_URLCONF = "tests.tracking.urls"
    settings.SHOP_RECO = {**settings.SHOP_RECO, "PRODUCT_VIEW_URL_NAMES": ("shop:product",)}
    buffer.reset_breaker()
    cache.clear()
    yield
    buffer.reset_breaker()


@pytest.fixture
def reco(settings):
    """Change SHOP_RECO keys for one test: ``reco(EVENT_BUFFER_URL=...)``."""

    def update(**values):
        settings.SHOP_RECO = {**settings.SHOP_RECO, **values}

    return update


@pytest.fixture
def products(db):
    from demo_shop.catalogue.models import Category, Product

    category = Category.objects.create(name="Mugs", slug="mugs")
    return [
        Product.objects.create(
            sku=f"SKU{i}", name=f"Mug {i}", category=category, price=Decimal("4.50"), stock=5
        )
        for i in range(1, 4)
    ]


@pytest.fixture
def customer(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("alice", password="pw")


@pytest.fixture
def browser(client):
    """The test client with a browser's user agent."""
    client.defaults["HTTP_USER_AGENT"] = BROWSER
    return client


@pytest.fixture
def buffered(redis_url, reco) -> str:
    """Events go through the Redis buffer in the test database."""
    reco(EVENT_BUFFER_URL=redis_url, EVENT_BUFFER_KEY="test:events")
    return redis_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server, so a test can stop it without touching the shared one."""

    def __init__(self, directory: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                self.directory,
                "--daemonize",
                "yes",
            ],
            check=True,
            capture_output=True,
        )
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        import redis

        with contextlib.suppress(redis.ConnectionError):  # shutdown closes the connection before answering
            redis.Redis(port=self.port).shutdown(nosave=False)


@pytest.fixture
def private_redis(tmp_path, redis_url) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(str(tmp_path))
    server.start()
    yield server
    server.stop()
    buffer._clients.pop(server.url, None)
