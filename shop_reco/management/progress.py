"""A dependency-free progress bar for management commands (stderr, redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol


class Stream(Protocol):
    """A text stream: sys.stderr, or a management command's ``self.stderr``."""

    def write(self, text: str) -> Any: ...

    def flush(self) -> Any: ...


class ProgressBar:
    """``bar.update(done, total)`` redraws; a non-terminal stream gets a line per 10% instead."""

    width = 30

    def __init__(self, label: str, *, stream: Stream | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream: Stream = stream or sys.stderr
        self.enabled = enabled
        self.started = time.monotonic()
        self.last_decile = -1
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        if total:
            fraction = min(1.0, done / total)
            filled = int(self.width * fraction)
            text = (
                f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{fraction:4.0%} {done}/{total} {elapsed:5.1f}s"
            )
            decile = int(fraction * 10)
        else:
            text = f"{self.label} {done} {elapsed:5.1f}s"
            decile = done // 10_000
        if self.tty:
            self.stream.write("\r" + text)
        elif decile != self.last_decile:
            self.stream.write(text + "\n")
        self.last_decile = decile
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
