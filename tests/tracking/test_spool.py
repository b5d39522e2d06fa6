"""The event spool: a request's deferred events in one local write(), shipped to the Redis buffer by a thread,
and nothing accepted lost when the disk fills, Redis is down or the process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import redis

from shop_reco.models import Event
from shop_reco.services.tracking import flush_events
from shop_reco.tracking import spool
from shop_reco.tracking.events import make_row, to_copy_line

pytestmark = pytest.mark.django_db
KEY = "test:events"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spooled(buffered, reco, tmp_path) -> Path:
    """Spooling on, shipped only when a test asks (the thread's interval is a minute)."""
    reco(EVENT_SPOOL_DIR=str(tmp_path / "spool"), EVENT_SPOOL_SHIP_SECONDS=60)
    yield spool.spool_directory()
    spool.close()


def spooled_lines(directory: Path) -> list[bytes]:
    return [line for path in directory.glob("*.spool") for line in path.read_bytes().splitlines()]


def test_a_product_view_is_written_to_the_spool_not_redis_then_shipped_and_stored(browser, spooled, buffered):
    client = redis.Redis.from_url(buffered)
    assert browser.get("/product/7/").status_code == 200
    assert client.llen(KEY) == 0  # no Redis round trip in the request
    assert len(spooled_lines(spooled)) == 1
    assert spool.ship_pending() == 1
    assert client.llen(KEY) == 1
    assert spool.ship_pending() == 0  # shipped once
    assert flush_events().stored == 1
    event = Event.objects.get()
    assert (event.event_type, event.product_key) == ("view", "7")


def test_the_thread_ships_without_being_asked(browser, buffered, reco, tmp_path):
    reco(EVENT_SPOOL_DIR=str(tmp_path), EVENT_SPOOL_SHIP_SECONDS=0.05)
    try:
        for _ in range(3):
            browser.get("/product/7/")
        client = redis.Redis.from_url(buffered)
        deadline = time.monotonic() + 5
        while client.llen(KEY) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.llen(KEY) == 3
    finally:
        spool.close()
    assert list(tmp_path.rglob("*.spool")) == []  # a process that stops cleanly leaves no file


def test_without_a_buffer_nothing_is_spooled(browser, reco, tmp_path):
    reco(EVENT_SPOOL_DIR=str(tmp_path / "spool"))
    browser.get("/product/7/")
    assert Event.objects.count() == 1  # written directly, as without the setting
    assert not (tmp_path / "spool").exists()


def test_a_full_disk_falls_back_to_the_buffer_and_leaves_no_partial_line(browser, spooled, buffered):
    browser.get("/product/7/")
    with mock.patch.object(spool.os, "write", return_value=5):  # a short write: the disk filled midway
        browser.get("/product/8/")
    assert redis.Redis.from_url(buffered).llen(KEY) == 1  # the second view took the usual way
    assert len(spooled_lines(spooled)) == 1  # the partial line was taken back
    spool.ship_pending()
    flush_events()
    assert sorted(Event.objects.values_list("product_key", flat=True)) == ["7", "8"]


def test_an_unreachable_buffer_ships_to_the_database(browser, spooled, reco):
    browser.get("/product/7/")
    reco(EVENT_BUFFER_URL="redis://127.0.0.1:1/0")  # nothing listens there
    assert spool.ship_pending() == 1
    assert Event.objects.get().product_key == "7"


def test_shops_sharing_a_directory_keep_their_spools_apart(buffered, reco, tmp_path):
    reco(EVENT_SPOOL_DIR=str(tmp_path))
    first = spool.spool_directory()
    reco(EVENT_BUFFER_KEY="another:shop")
    assert spool.spool_directory() != first and spool.spool_directory().parent == first.parent == tmp_path


def test_a_full_spool_file_is_replaced_once_shipped(spooled, monkeypatch):
    monkeypatch.setattr(spool, "ROTATE_BYTES", 1)
    shipped: list[bytes] = []
    live = spool.Spool(spooled, shipped.extend)
    first = live.path
    assert live.append(["one", "two"]) and live.ship() == 2
    assert live.path != first and not first.exists()
    assert live.append(["three"]) and live.ship() == 1
    assert shipped == [b"one", b"two", b"three"]
    live.close()


SPOOLING_PROCESS = """
import os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
django.setup()
from pathlib import Path
from shop_reco.tracking.spool import Spool
live = Spool(Path(sys.argv[1]), lambda lines: None)
assert live.append(sys.argv[2:])
print("spooled", flush=True)
time.sleep(60)
"""


def test_the_spool_of_a_killed_process_reaches_the_database(spooled, buffered):
    rows = [
        make_row("rec_impression", visitor_id=f"v{i}", slot="similar", context={"keys": ["1"]})
        for i in range(3)
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", SPOOLING_PROCESS, str(spooled), *(to_copy_line(row) for row in rows)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "spooled"
        survivor = spool.Spool(spooled, spool.ship_lines)
        assert survivor.ship_orphans() == 0  # its owner is alive: not an orphan
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert survivor.ship_orphans() == 3
        assert survivor.ship_orphans() == 0  # shipped once, file gone
        survivor.close()
    finally:
        process.kill()
        process.wait()
    assert list(spooled.glob("*.spool")) == []
    assert flush_events().stored == 3
    assert sorted(Event.objects.values_list("visitor_id", flat=True)) == ["v0", "v1", "v2"]


def test_lines_shipped_twice_are_stored_once(spooled, buffered):
    """The owner died between its RPUSH and noting it: the scan ships the same lines again."""
    row = make_row("view", visitor_id="v", product_key="7")
    spool.ship_lines([to_copy_line(row).encode()])
    spool.ship_lines([to_copy_line(row).encode()])
    assert flush_events().delivered == 2
    assert Event.objects.count() == 1


def test_a_forked_child_opens_its_own_spool_and_leaves_the_parents_alone(spooled):
    parent = spool.current_spool()
    assert parent.append(["parent-line"])
    with parent._write_lock:  # held by a parent thread at the fork: the child must not wait for it
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            try:
                child = spool.current_spool()
                ok = child is not parent and child.pid == os.getpid() and child.append(["child-line"])
                child.close()  # ships the child's line to the buffer
            except BaseException:
                ok = False
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:  # a child stuck on a lock it inherited held
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert parent.path.exists() and parent.path.read_bytes() == b"parent-line\n"
    assert parent.append(["after-fork"])  # the parent's descriptor is still open
