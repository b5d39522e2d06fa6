"""Deployment: ``check --deploy`` with the demo's production settings, and a dependency audit."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import REQUIRE_SERVICES, reachable

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_")) and key != "DATABASE_URL"
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "demo_shop.settings_production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "shop.example.com",
            **extra,
        }
    )
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_the_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "short"}, "at least 50"),
        ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS"),
    ],
)
def test_production_settings_refuse_to_start_without_their_secrets(change, message):
    result = manage("check", env=production_env(**change))
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_values():
    code = (
        "import django; django.setup(); from django.conf import settings as s; import json; "
        "print(json.dumps([s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_SSL_REDIRECT, s.SHOP_RECO['VISITOR_COOKIE_SECURE'], s.ALLOWED_HOSTS]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, True, True, 31_536_000, True, True, ["shop.example.com"]]


@pytest.mark.slow
def test_dependency_audit_finds_no_known_vulnerability(tmp_path):
    """pip-audit of this environment against PyPI's advisory data; fails on any known vulnerability."""
    pip_audit = Path(sys.executable).with_name("pip-audit")
    if not pip_audit.exists() and shutil.which("pip-audit") is None:
        pytest.skip("pip-audit is not installed (dev dependency group)")

    def unavailable(why: str) -> None:
        if REQUIRE_SERVICES:
            pytest.fail(f"dependency audit impossible: {why} (SHOP_RECO_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(f"dependency audit skipped: {why}")

    if not reachable("https://pypi.org", 443):
        unavailable("PyPI's advisory service (pypi.org:443) is unreachable")
    report = tmp_path / "audit.json"
    result = subprocess.run(
        [str(pip_audit) if pip_audit.exists() else "pip-audit", "--skip-editable", "--progress-spinner", "off",
         "--format", "json", "--output", str(report)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if not report.exists():
        unavailable(f"pip-audit produced no report: {result.stderr.strip()[-300:]}")
    dependencies = json.loads(report.read_text())["dependencies"]
    vulnerable = {
        f"{dep['name']} {dep['version']}": [v["id"] for v in dep["vulns"]]
        for dep in dependencies
        if dep.get("vulns")
    }
    assert not vulnerable, f"known vulnerabilities: {vulnerable}"
    audited = [dep for dep in dependencies if "skip_reason" not in dep]
    if not audited:
        # The index answered, but without per-release advisory data (a mirror, or a proxy that serves only
        # the simple index): nothing was audited, which must not pass for a clean audit.
        pytest.skip(
            f"dependency audit skipped: the advisory service returned no data for any of the "
            f"{len(dependencies)} installed distributions (pip-audit: "
            f"{dependencies[0].get('skip_reason', '') if dependencies else 'no dependencies'})"
        )
    assert result.returncode == 0, result.stdout + result.stderr
