from django.db import connection


def test_tests_run_on_postgresql_when_available(db):
    from tests.services import postgres_available

    assert (connection.vendor == "postgresql") == postgres_available()
