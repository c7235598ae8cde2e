"""A non-editable `pip install .` is a working Trustladder (issue 14, item 7).

Builds a fresh virtual environment, installs a copy of the project into it the way a
deployment would (a wheel, not an editable install, with only the declared dependencies) and
runs Django's checks, every migration on SQLite and the Celery task discovery from a directory
outside the source tree, so nothing can be imported from the checkout by accident.

Slow-ish (a venv and a dependency install, from pip's cache): about half a minute here.
"""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "core", "deliveries", "deployments", "integrations", "reviews")

pytestmark = pytest.mark.install


def _run(argv: list, *, cwd: Path, env: dict, timeout: float = 600) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)  # noqa: S603
    assert result.returncode == 0, f"{' '.join(map(str, argv))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh venv's python, an empty working directory outside the source tree)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    # Only what a release would contain: no tests, no bench, no .venv, no caches.
    shutil.copy2(ROOT / "pyproject.toml", source / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # No pip in the new venv (ensurepip is slow): the running pip installs into it (--python).
    venv.create(base / "venv", with_pip=False)
    python = base / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-input", str(source)],
        cwd=base,
        env=env,
    )
    workdir = base / "elsewhere"
    workdir.mkdir()
    return python, workdir


def _app_env(workdir: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "TRUSTLADDER_", "PYTHON", "CELERY_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return env | {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "install-test-" + "k" * 50,
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": f"sqlite:///{workdir / 'installed.sqlite3'}",
        "REDIS_URL": "",  # empty counts as unset: tasks run in-process
    }


def test_the_wheel_holds_every_package_and_nothing_from_the_checkout_is_imported(installed):
    python, workdir = installed
    out = _run(
        [
            python,
            "-c",
            "import importlib, sys; print('\\n'.join(importlib.import_module(p).__file__ for p in sys.argv[1:]))",
        ]
        + list(PACKAGES),
        cwd=workdir,
        env=_app_env(workdir),
    )
    files = out.split()
    assert len(files) == len(PACKAGES)
    assert all("site-packages" in f and str(ROOT) not in f for f in files), files


def test_the_installed_app_passes_its_checks_and_migrates_on_sqlite(installed):
    python, workdir = installed
    env = _app_env(workdir)
    _run([python, "-m", "django", "check", "--fail-level", "ERROR"], cwd=workdir, env=env)
    _run([python, "-m", "django", "migrate", "--noinput", "-v", "0"], cwd=workdir, env=env)
    applied = _run([python, "-m", "django", "showmigrations", "--list"], cwd=workdir, env=env)
    for app in ("deployments", "reviews", "deliveries"):
        assert f"\n{app}\n" in f"\n{applied}", app
    assert "[ ]" not in applied  # every migration applied
    assert (workdir / "installed.sqlite3").exists()


def test_the_installed_worker_finds_every_task(installed):
    python, workdir = installed
    code = (
        "import django; django.setup()\n"
        "from config.celery_app import app\n"
        "app.loader.import_default_modules()\n"
        "print(' '.join(sorted(n for n in app.tasks if not n.startswith('celery.'))))\n"
    )
    names = set(_run([python, "-c", code], cwd=workdir, env=_app_env(workdir)).split())
    from django.conf import settings

    assert names == set(settings.WORKER_TASKS)


def test_the_installed_app_serves_its_pages_and_collects_its_static_files(installed):
    """Templates and static files are package data (core/templates, core/static): the wheel
    renders the sign-in page, with its stylesheet and script collected, from outside the tree."""
    python, workdir = installed
    env = _app_env(workdir) | {"DJANGO_STATIC_ROOT": str(workdir / "collected")}
    _run([python, "-m", "django", "migrate", "--noinput", "-v", "0"], cwd=workdir, env=env)
    _run([python, "-m", "django", "collectstatic", "--noinput", "-v", "0"], cwd=workdir, env=env)
    assert (workdir / "collected" / "js" / "app.js").exists()
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client().get('/accounts/login/', secure=True, HTTP_HOST='localhost')\n"
        "print(r.status_code); print(r.content.decode())\n"
    )
    out = _run([python, "-c", code], cwd=workdir, env=env)
    status, page = out.split("\n", 1)
    assert status == "200", out[-2000:]
    assert "Sign in" in page and "/static/js/app." in page
