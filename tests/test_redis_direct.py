"""Per-thread Redis connections (the impression append, the history and list reads) on a real Redis."""

from __future__ import annotations

import os
import threading

import pytest
import redis

from shop_reco.redis_direct import ThreadConnections


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _in_thread(function):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()))
    thread.start()
    thread.join()
    return result["value"]


def test_commands_go_to_the_clients_database(client):
    connections = ThreadConnections(client)
    assert connections.call("RPUSH", "shop_reco:direct", "a", "b") == 2
    assert client.lrange("shop_reco:direct", 0, -1) == [b"a", b"b"]
    database = client.connection_pool.connection_kwargs.get("db", 0)
    assert f" db={database} " in connections.call("CLIENT", "INFO").decode()
    assert connections.call("MGET", "shop_reco:direct-missing", "shop_reco:direct-none") == [None, None]


def test_each_thread_keeps_one_connection_of_its_own(client):
    connections = ThreadConnections(client)
    mine = connections.call("CLIENT", "ID")
    assert connections.call("CLIENT", "ID") == mine  # reused, not reconnected
    theirs = _in_thread(lambda: [connections.call("CLIENT", "ID"), connections.call("CLIENT", "ID")])
    assert theirs[0] == theirs[1] != mine
    assert connections.call("CLIENT", "ID") == mine


def test_a_dropped_connection_fails_that_command_and_the_next_reconnects(client):
    connections = ThreadConnections(client)
    first = connections.call("CLIENT", "ID")
    client.client_kill_filter(_id=first)
    with pytest.raises(redis.ConnectionError):
        connections.call("RPUSH", "shop_reco:direct", "lost")
    again = connections.call("CLIENT", "ID")
    assert again != first
    assert connections.call("RPUSH", "shop_reco:direct", "kept") == 1  # the failed append did not land
    assert client.lrange("shop_reco:direct", 0, -1) == [b"kept"]


def test_a_forked_child_opens_its_own_connection(client):
    connections = ThreadConnections(client)
    parent = connections.call("CLIENT", "ID")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer with its connection's id, never touch the parent's socket
        try:
            os.write(write_end, str(connections.call("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child = int(os.read(read_end, 64).decode())
    os.waitpid(pid, 0)
    os.close(read_end)
    assert child != parent
    assert connections.call("CLIENT", "ID") == parent  # the parent's connection still answers the parent
