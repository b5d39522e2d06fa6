"""A local spool for the events a request stores after its response (impressions, product views).

With ``EVENT_SPOOL_DIR`` set, the middleware's deferred events go to a file of this process's with one
``write()``, and a thread ships the file's new lines to the Redis buffer every ``EVENT_SPOOL_SHIP_SECONDS``
in one ``RPUSH``. Why: an ``RPUSH`` per request costs the web worker ~0.1 ms of CPU and Redis about half as
much again, an eighth of a warm slot request; a ``write()`` to the page cache costs a few microseconds.

Nothing accepted is lost when the process dies: once ``write()`` returns, the kernel holds the bytes, whatever
happens to the process (a crash, gunicorn's SIGKILL of a stuck worker). Each process holds an ``flock`` on its
file for as long as it lives; a file nobody holds belongs to a dead process, and the next shipping thread that
looks (every ``ORPHAN_SCAN_SECONDS``, and at start) ships it whole and removes it. Lines shipped twice (the
owner died between the ``RPUSH`` and noting it) are stored once: the buffer's flush skips a
``client_event_id`` already stored. A machine that loses power loses what the page cache had not written yet,
as a Redis without ``appendfsync always`` does.

An erasure ships its own process's spool before flushing the buffer; another process's lines of the same
shopper (a page they loaded within the last ``EVENT_SPOOL_SHIP_SECONDS``) can land just after it, as an
event of a request still running elsewhere always could.

When Redis cannot take the lines, the thread writes them to the database; when neither can, they stay in the
spool and the next round tries again. A spool that cannot be written (disk full, say) returns False and the
caller stores the events the usual way.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shop_reco.conf import reco_settings
from shop_reco.tracking.events import to_copy_line

try:
    import fcntl
except ImportError:  # Windows: no flock, so no spool (events take the Redis append as without the setting)
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("shop_reco.tracking")

SUFFIX = ".spool"
# A file this large, once fully shipped, is replaced by a new one (what a crash could ship twice is bounded).
ROTATE_BYTES = 256 * 1024
ORPHAN_SCAN_SECONDS = 30.0
# One warning per this many seconds while shipping fails.
WARN_SECONDS = 60.0


def _split(data: bytes) -> list[bytes]:
    """The complete lines of ``data``; a trailing fragment (a write cut short) is dropped."""
    lines = data.split(b"\n")
    if lines[-1]:
        logger.warning("shop_reco dropped a partial spool line of %d bytes", len(lines[-1]))
    return [line for line in lines[:-1] if line]


class Spool:
    """One process's spool file: :meth:`append` from request threads, :meth:`ship` from the shipping thread."""

    def __init__(
        self,
        directory: Path,
        ship_lines: Callable[[Sequence[bytes]], None],
        where: tuple[str, str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self.where = where  # the settings it was made for (see current_spool)
        self._ship_lines = ship_lines
        self._write_lock = threading.Lock()
        self._ship_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.path, self._fd = self._new_file()
        self._written = 0  # bytes in the current file
        self._shipped = 0  # of which shipped

    def _new_file(self) -> tuple[Path, int]:
        path = self.directory / f"{self.pid}-{uuid.uuid4().hex}{SUFFIX}"
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while this process lives: the file is not an orphan
        return path, fd

    def append(self, lines: Sequence[str]) -> bool:
        """Write the lines in one ``write()``; False (nothing written) when the file cannot take them."""
        data = "".join(f"{line}\n" for line in lines).encode()
        with self._write_lock:
            if self._fd < 0:
                return False
            try:
                written = os.write(self._fd, data)
            except OSError:
                logger.warning("shop_reco could not write the event spool %s", self.path, exc_info=True)
                return False
            if written != len(data):  # the disk filled up midway: take the partial line back
                os.ftruncate(self._fd, self._written)
                return False
            self._written += written
        return True

    def ship(self) -> int:
        """Ship the lines written since the last call; raises when they could not be stored anywhere."""
        with self._ship_lock:
            with self._write_lock:
                end, fd = self._written, self._fd
            shipped = 0
            if end > self._shipped:
                lines = _split(os.pread(fd, end - self._shipped, self._shipped))
                self._ship_lines(lines)  # raises: the bytes stay for the next round
                self._shipped = end
                shipped = len(lines)
            if self._shipped >= ROTATE_BYTES:
                self._rotate()
            return shipped

    def _rotate(self) -> None:
        with self._write_lock:
            if self._written != self._shipped:
                return  # written meanwhile: next round
            old_path, old_fd = self.path, self._fd
            self.path, self._fd = self._new_file()
            self._written = self._shipped = 0
        # Unlinked before closed (which drops the lock): a scan finds no shipped file without an owner.
        old_path.unlink(missing_ok=True)
        os.close(old_fd)

    def ship_orphans(self) -> int:
        """Ship and remove the spools of processes that died; returns the lines shipped."""
        shipped = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive
                if os.fstat(fd).st_nlink == 0:
                    continue  # shipped and removed by someone else since we opened it
                with os.fdopen(os.dup(fd), "rb") as handle:
                    lines = _split(handle.read())
                if lines:
                    self._ship_lines(lines)
                path.unlink(missing_ok=True)
                shipped += len(lines)
                logger.info("shop_reco shipped %d events from the spool of a stopped process", len(lines))
            finally:
                os.close(fd)
        return shipped

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="shop_reco-spool", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        next_scan = 0.0  # at start: a process that died before this one may have left its spool
        warned_at = -WARN_SECONDS
        while True:
            try:
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + ORPHAN_SCAN_SECONDS
                    self.ship_orphans()
                if self._stop.wait(interval):
                    return  # close() ships the rest
                self.ship()
            except Exception:  # keep the lines and try again; say so now and then, not every round
                if time.monotonic() - warned_at >= WARN_SECONDS:
                    warned_at = time.monotonic()
                    logger.warning("shop_reco could not ship the event spool; retrying", exc_info=True)
            finally:
                _close_database_connection()

    def close(self) -> None:
        """Stop the thread and ship what is left; a file still holding unshipped lines stays for a scan."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            self.ship()
        except Exception:
            logger.warning(
                "shop_reco left unshipped events in %s for the next process", self.path, exc_info=True
            )
        with self._write_lock:
            fd, self._fd = self._fd, -1
            done = self._written == self._shipped
        if done:
            self.path.unlink(missing_ok=True)
        os.close(fd)

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptor (its flock stays the parent's) without shipping.

        No lock is taken: the child runs one thread, and a lock a parent's thread held at the fork stays held
        in the child forever."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _close_database_connection() -> None:
    # The fallback opens a connection in this thread; no request cycle closes it.
    from django.db import connections

    connections.close_all()


def ship_lines(lines: Sequence[bytes]) -> None:
    """To the Redis buffer; to the database when Redis cannot take them. Raises when neither can."""
    from shop_reco.tracking import buffer, store

    if not lines:
        return
    try:
        buffer.push_lines(lines)
    except Exception:
        logger.warning("shop_reco event buffer unreachable; writing %d spooled events directly", len(lines))
        store.write_copy_lines(lines)


_spool: Spool | None = None
_spool_lock = threading.Lock()


def spooling() -> bool:
    return fcntl is not None and bool(reco_settings.EVENT_SPOOL_DIR) and bool(reco_settings.EVENT_BUFFER_URL)


def append(rows: Sequence[dict[str, Any]]) -> bool:
    """Spool validated rows; False when spooling is off or the spool cannot take them (store them otherwise)."""
    if not rows or not spooling():
        return False
    try:
        spool = current_spool()
    except OSError:
        logger.warning("shop_reco could not open the event spool", exc_info=True)
        return False
    return spool.append([to_copy_line(row) for row in rows])


def spool_directory() -> Path:
    """``EVENT_SPOOL_DIR``/<buffer>: a shop's spools apart from another's that shares the directory, so an
    orphan is shipped to the buffer its events were meant for."""
    return _directory_for(_where())


def _where() -> tuple[str, str, str]:
    return (
        str(reco_settings.EVENT_SPOOL_DIR),
        str(reco_settings.EVENT_BUFFER_URL),
        reco_settings.EVENT_BUFFER_KEY,
    )


def _directory_for(where: tuple[str, str, str]) -> Path:
    root, url, key = where
    return Path(root) / hashlib.sha256(f"{url}|{key}".encode()).hexdigest()[:16]


def current_spool() -> Spool:
    """This process's spool in :func:`spool_directory`, its shipping thread started on first use."""
    global _spool
    where = _where()  # compared as given: the path and its hash are worked out only when it changes
    spool = _spool
    if spool is not None and spool.pid == os.getpid() and spool.where == where:
        return spool
    with _spool_lock:
        spool = _spool
        if spool is None or spool.pid != os.getpid() or spool.where != where:
            if spool is not None and spool.pid == os.getpid():
                spool.close()  # the setting changed
            spool = Spool(_directory_for(where), ship_lines, where)
            spool.start(float(reco_settings.EVENT_SPOOL_SHIP_SECONDS))
            _spool = spool
    return spool


def ship_pending() -> int:
    """Ship what this process has spooled now (before an erasure flushes the buffer, say)."""
    spool = _spool
    if spool is None or spool.pid != os.getpid():
        return 0
    return spool.ship()


def close() -> None:
    """Ship what this process spooled and stop its thread (at exit, and in tests)."""
    global _spool
    with _spool_lock:
        spool, _spool = _spool, None
    if spool is not None and spool.pid == os.getpid():
        spool.close()


def _forget_after_fork() -> None:
    global _spool, _spool_lock
    _spool_lock = threading.Lock()  # the parent's may have been held by another thread at the fork
    spool, _spool = _spool, None
    if spool is not None:
        spool.forget()


atexit.register(close)
os.register_at_fork(after_in_child=_forget_after_fork)
