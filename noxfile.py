"""Test matrix: Python x Django, and the built wheel installed in a fresh environment.

nox -s tests        # every combination
nox -s wheel        # the wheel, not the source tree
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
MATRIX = [("3.11", "5.2"), ("3.12", "6.1"), ("3.13", "6.1")]


@nox.session
@nox.parametrize("python,django", MATRIX)
def tests(session: nox.Session, django: str) -> None:
    session.install("-e", ".", "--group", "dev", f"django~={django}.0")
    session.run("pytest", *session.posargs, env={"SHOP_RECO_TEST_DB": f"test_shop_reco_{session.python}"})


@nox.session(python="3.11")
def wheel(session: nox.Session) -> None:
    """Install the built wheel and run the suite from a copy without the source package."""
    dist = Path(tempfile.mkdtemp())
    session.run("uv", "build", "--wheel", "--out-dir", str(dist), external=True)
    wheel_file = next(dist.glob("shop_reco-*.whl"))
    session.install(str(wheel_file), "--group", "dev")
    work = Path(tempfile.mkdtemp())
    for name in ("tests", "demo_shop", "manage.py", "pyproject.toml"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    session.chdir(work)
    session.run(
        "python",
        "-c",
        "import shop_reco, sys; assert 'site-packages' in shop_reco.__file__, shop_reco.__file__",
    )
    session.run("pytest", *session.posargs, env={"SHOP_RECO_TEST_DB": "test_shop_reco_wheel"})
