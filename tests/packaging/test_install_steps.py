"""The README's install steps, applied one by one to a bare ``django-admin startproject`` with the built wheel.

Each step left out must show up in ``manage.py check`` with its own id; with every step done, nothing does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PRODUCT_APP = """
from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    stock = models.IntegerField(default=0)
"""

# (what the step adds, the check id reported while it is missing)
# Adding "shop_reco" itself to INSTALLED_APPS comes first: until then none of its checks can run.
STEPS = [
    ("rest_framework", "shop_reco.E007"),
    ("shop_reco_setting", "shop_reco.E001"),
    ("middleware", "shop_reco.E005"),
    ("urls", "shop_reco.W002"),
    ("beat", "shop_reco.W004"),
    ("migrate", "shop_reco.W003"),
]


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH")
    }
    return {**env, **extra}


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv_uv = Path(sys.executable).parent / "uv"
    uv = str(venv_uv) if venv_uv.exists() else shutil.which("uv") or "uv"
    work = tmp_path_factory.mktemp("startproject")
    run([uv, "build", "--wheel", "--out-dir", str(work / "dist"), str(ROOT)], cwd=work)
    wheel = next((work / "dist").glob("shop_reco-*.whl"))
    run([uv, "venv", "--quiet", "--python", sys.executable, str(work / "venv")], cwd=work)
    python = str(work / "venv" / "bin" / "python")
    run([uv, "pip", "install", "--quiet", "--python", python, str(wheel)], cwd=work)
    (work / "project").mkdir()
    run([python, "-m", "django", "startproject", "mysite", str(work / "project")], cwd=work)
    app = work / "project" / "shop"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(PRODUCT_APP)
    return work


def apply(step: str, project: Path) -> None:
    settings = project / "mysite" / "settings.py"
    urls = project / "mysite" / "urls.py"
    text = settings.read_text()
    if step == "shop_reco_app":
        text = text.replace("INSTALLED_APPS = [", 'INSTALLED_APPS = [\n    "shop",\n    "shop_reco",')
    elif step == "rest_framework":
        text = text.replace("INSTALLED_APPS = [", 'INSTALLED_APPS = [\n    "rest_framework",')
    elif step == "shop_reco_setting":
        text += '\nSHOP_RECO = {"PRODUCT_MODEL": "shop.Product"}\n'
    elif step == "middleware":
        text = text.replace(
            "'django.contrib.auth.middleware.AuthenticationMiddleware',",
            "'django.contrib.auth.middleware.AuthenticationMiddleware',\n"
            "    'shop_reco.middleware.TrackingMiddleware',",
        )
    elif step == "urls":
        urls.write_text(
            urls.read_text()
            .replace("from django.urls import path", "from django.urls import include, path")
            .replace("urlpatterns = [", 'urlpatterns = [\n    path("reco/", include("shop_reco.urls")),')
        )
    elif step == "beat":
        text += "\nfrom shop_reco.schedules import default_beat_schedule\n"
        text += "CELERY_BEAT_SCHEDULE = default_beat_schedule()\n"
    settings.write_text(text)


def test_each_missing_step_is_reported(site: Path) -> None:
    project = site / "project"
    python = str(site / "venv" / "bin" / "python")
    env = clean_env(DJANGO_SETTINGS_MODULE="mysite.settings")
    apply("shop_reco_app", project)
    done_ids: list[str] = []
    for step, missing_id in STEPS:
        if step == "migrate":
            run([python, "manage.py", "makemigrations", "shop"], cwd=project, env=env)
        report = subprocess.run(
            [python, "manage.py", "check", "--database", "default"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        output = report.stdout + report.stderr
        assert missing_id in output, (step, output)
        assert not [done for done in done_ids if done in output], (step, output)
        done_ids.append(missing_id)
        if step == "migrate":
            run([python, "manage.py", "migrate"], cwd=project, env=env)
        else:
            apply(step, project)
    final = run([python, "manage.py", "check", "--database", "default"], cwd=project, env=env)
    assert "shop_reco." not in final, final
