"""The tracking system checks, each with its id."""

from __future__ import annotations

import builtins
from unittest import mock

import pytest

from shop_reco.checks import check_tracking


def ids(messages) -> list[str]:
    return sorted(message.id for message in messages)


def test_the_test_shop_is_clean():
    assert check_tracking() == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"BEACON_THROTTLE_RATE": "lots"}, ["shop_reco.E031"]),
        ({"BEACON_THROTTLE_RATE": "10/fortnight"}, ["shop_reco.E031"]),
        ({"BEACON_THROTTLE_RATE": None}, []),
        ({"PRODUCT_VIEW_URL_NAMES": ("shop:nope",)}, ["shop_reco.W030"]),
        ({"PRODUCT_VIEW_URL_NAMES": ("nowhere:product",)}, ["shop_reco.W030"]),
        ({"PRODUCT_VIEW_URL_NAMES": ("shop:login",)}, ["shop_reco.W030"]),  # no "pk" argument
        ({"PRODUCT_VIEW_URL_NAMES": ("shop:login",), "PRODUCT_VIEW_URL_KWARG": "username"}, []),
    ],
)
def test_tracking_settings_errors_have_ids(reco, values, expected):
    reco(**values)
    assert ids(check_tracking()) == expected


def test_a_buffer_without_the_redis_package(reco):
    reco(EVENT_BUFFER_URL="redis://127.0.0.1:6379/0")
    real_import = builtins.__import__

    def no_redis(name, *args, **kwargs):
        if name == "redis":
            raise ImportError("No module named 'redis'")
        return real_import(name, *args, **kwargs)

    with mock.patch("builtins.__import__", no_redis):
        assert ids(check_tracking()) == ["shop_reco.E030"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"EVENT_SPOOL_DIR": 42}, ["shop_reco.E032"]),
        ({"EVENT_SPOOL_DIR": "{tmp}/a-file/spool"}, ["shop_reco.E032"]),  # cannot be made
        ({"EVENT_BUFFER_URL": None}, ["shop_reco.W031"]),  # nothing to ship to: nothing is spooled
        ({}, []),
    ],
)
def test_spool_settings_are_checked(reco, tmp_path, values, expected):
    reco(EVENT_BUFFER_URL="redis://127.0.0.1:6379/0", EVENT_SPOOL_DIR=str(tmp_path / "new" / "spool"))
    (tmp_path / "a-file").write_text("")
    reco(
        **{
            name: value.format(tmp=tmp_path) if isinstance(value, str) else value
            for name, value in values.items()
        }
    )
    assert ids(check_tracking()) == expected


def test_a_spool_on_a_platform_without_flock_is_reported_and_off(reco, tmp_path, monkeypatch):
    from shop_reco.tracking import spool

    reco(EVENT_BUFFER_URL="redis://127.0.0.1:6379/0", EVENT_SPOOL_DIR=str(tmp_path))
    monkeypatch.setattr(spool, "fcntl", None)
    assert ids(check_tracking()) == ["shop_reco.W031"]
    assert not spool.spooling()
