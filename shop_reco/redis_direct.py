"""Redis commands on the storefront's hot path, sent on a connection each thread keeps for itself.

``redis.Redis.execute_command`` takes a connection from the pool, polls it for stale replies, runs the call
through the retry machinery and hands the connection back: ~40 us of CPU per command on a 2-core machine,
more than the loopback round trip itself. The shop's request threads send one or two commands per request
(the impression append, the history read), so each thread here keeps one connection, made by redis-py from
the client's own pool settings (host, database, password, TLS, timeouts), and talks on it directly.

A failed command closes the connection (the next one reconnects) and raises, as the client would, so callers
keep their fallbacks. A connection made before a fork is never used in the child.
"""

from __future__ import annotations

import os
import threading
from typing import Any


class ThreadConnections:
    """``call(*command)``: one command and its raw reply, on this thread's connection to the client's server."""

    def __init__(self, client: Any) -> None:
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = dict(pool.connection_kwargs)
        self._local = threading.local()

    def call(self, *command: Any) -> Any:
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or connection.pid != os.getpid():
            connection = local.connection = self._connection_class(**self._connection_kwargs)
        try:
            connection.send_command(*command)
            return connection.read_response()
        except BaseException:
            # A half-read reply would answer the next command: start again on a fresh connection.
            connection.disconnect()
            raise
