"""An empty environment variable counts as unset (config/env.py), for every variable the
settings read: `DATABASE_URL=` or `REDIS_URL=` in a compose file must not crash the app."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import env, env_bool, env_float, env_int, env_list

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILES = sorted((ROOT / "config" / "settings").glob("*.py")) + [ROOT / "config" / "gunicorn.conf.py"]
READER = re.compile(r"""\b(?:env|env_int|env_float|env_bool|env_list|_env)\(\s*["']([A-Z0-9_]+)["']""")


def _variables() -> set[str]:
    names = set()
    for path in SETTINGS_FILES:
        names |= set(READER.findall(path.read_text()))
    return names


def test_the_settings_variables_are_found():
    names = _variables()
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_CONN_MAX_AGE", "TRUSTLADDER_WEBHOOK_TIMEOUT_SECONDS"} <= names
    assert {"GUNICORN_WORKERS", "DJANGO_SECURE_HSTS_SECONDS"} <= names
    # Nothing in the settings reads os.environ around the readers (which treat empty as unset).
    for path in SETTINGS_FILES:
        if path.name != "gunicorn.conf.py":
            assert "os.environ" not in path.read_text(), path


@pytest.mark.parametrize("value", ["", None])
def test_empty_and_unset_read_the_default(monkeypatch, value):
    for name in ("TL_T_STR", "TL_T_INT", "TL_T_FLOAT", "TL_T_BOOL", "TL_T_LIST"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert env("TL_T_STR", "d") == "d"
    assert env_int("TL_T_INT", 7) == 7
    assert env_float("TL_T_FLOAT", 2.5) == 2.5
    assert env_bool("TL_T_BOOL", True) is True and env_bool("TL_T_BOOL", False) is False
    assert env_list("TL_T_LIST", ["a"]) == ["a"]


def test_set_values_are_read(monkeypatch):
    monkeypatch.setenv("TL_T_STR", "x")
    monkeypatch.setenv("TL_T_INT", " 12 ")
    monkeypatch.setenv("TL_T_FLOAT", "0.5")
    monkeypatch.setenv("TL_T_BOOL", "off")
    monkeypatch.setenv("TL_T_LIST", "a, b,,")
    assert env("TL_T_STR", "d") == "x"
    assert env_int("TL_T_INT", 7) == 12
    assert env_float("TL_T_FLOAT", 2.5) == 0.5
    assert env_bool("TL_T_BOOL", True) is False
    assert env_list("TL_T_LIST", []) == ["a", "b"]


def test_a_malformed_number_is_still_an_error(monkeypatch):
    monkeypatch.setenv("TL_T_INT", "ten")
    with pytest.raises(ValueError):
        env_int("TL_T_INT", 7)


SHOW = """
import json
from django.conf import settings as s
print(json.dumps({
    "engine": s.DATABASES["default"]["ENGINE"],
    "conn_max_age": s.DATABASES["default"]["CONN_MAX_AGE"],
    "eager": s.CELERY_TASK_ALWAYS_EAGER,
    "broker": s.CELERY_BROKER_URL,
    "hosts": s.ALLOWED_HOSTS,
    "webhook_timeout": s.WEBHOOK_TIMEOUT_SECONDS,
    "log_format": s.LOG_FORMAT,
    "hsts": getattr(s, "SECURE_HSTS_SECONDS", None),
}))
"""


@pytest.mark.parametrize("module", ["config.settings.local", "config.settings.production", "config.settings.test"])
def test_every_settings_variable_set_empty_reads_as_unset(module):
    env_vars = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env_vars |= dict.fromkeys(_variables(), "")
    env_vars["DJANGO_SETTINGS_MODULE"] = module
    if module.endswith("production"):
        env_vars["DJANGO_SECRET_KEY"] = "empty-env-test-" + "s" * 50  # required there (empty is refused)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env=env_vars,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["engine"] == "django.db.backends.sqlite3"  # DATABASE_URL= is the SQLite default
    assert shown["eager"] is True and shown["broker"] == "memory://"  # REDIS_URL= runs tasks in-process
    assert shown["hosts"] == ["127.0.0.1", "localhost", "[::1]", "testserver"]
    assert shown["webhook_timeout"] == 10
    assert shown["conn_max_age"] == (0 if module.endswith("test") else 60)
    assert shown["log_format"] == ("console" if module.endswith("local") else "json")
    if module.endswith("production"):
        assert shown["hsts"] == 31536000


def test_an_empty_secret_key_is_refused_in_production():
    env_vars = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env_vars |= {"DJANGO_SETTINGS_MODULE": "config.settings.production", "DJANGO_SECRET_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env_vars, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def test_gunicorn_settings_read_empty_as_unset(monkeypatch):
    for name in ("GUNICORN_BIND", "GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_FORWARDED_ALLOW_IPS"):
        monkeypatch.setenv(name, "")
    namespace: dict = {}
    exec(compile((ROOT / "config" / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)  # noqa: S102
    assert namespace["bind"] == "0.0.0.0:8000" and namespace["workers"] == 2 and namespace["threads"] == 4
    assert namespace["forwarded_allow_ips"] == "127.0.0.1"
