"""Settings, demo seeding and the compose file stay consistent with the code."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parent.parent


def run_settings(module: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DEBUG, settings.DELTAWEB_DEMO_SEED_ALLOWED)",
        ],
        env={**clean, "DJANGO_SETTINGS_MODULE": module, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_refuses_the_development_secret_key():
    result = run_settings("deltaweb.settings.production")
    assert result.returncode != 0
    assert "production refuses the development key" in result.stderr
    short = run_settings("deltaweb.settings.production", SECRET_KEY="too-short")
    assert short.returncode != 0


def test_production_starts_with_a_real_key_and_no_demo():
    result = run_settings("deltaweb.settings.production", SECRET_KEY="k" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_an_empty_database_url_means_the_embedded_default(tmp_path):
    # a compose file or an env file passing an unset variable gives an empty string
    result = run_settings(
        "deltaweb.settings.local",
        DATABASE_URL="",
        CELERY_BROKER_URL="filesystem://",
        DELTAWEB_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "broker" / "queue").is_dir()  # the filesystem broker's folders, made at start


@pytest.mark.django_db
def test_seed_demo_is_idempotent(settings):
    from images.models import ProviderAccount

    call_command("seed_demo")
    call_command("seed_demo")
    account = ProviderAccount.objects.get(name="mock")
    assert account.users.get().username == "mockuser"
    assert account.images.count() == 3


@pytest.mark.django_db
def test_seed_demo_refused_outside_the_embedded_default(settings):
    settings.DELTAWEB_DEMO_SEED_ALLOWED = False
    with pytest.raises(CommandError, match="disabled"):
        call_command("seed_demo")


def test_compose_file_matches_the_code():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "worker-sync", "beat"} <= set(services)
    app = [services[name] for name in ("web", "worker", "worker-sync", "beat")]
    assert {s["image"] for s in app} == {"deltaweb:latest"} and all(s["build"] == "." for s in app)
    settings_source = "".join(p.read_text() for p in (ROOT / "deltaweb" / "settings").glob("*.py"))
    settings_source += (ROOT / "deltaweb" / "gunicorn_conf.py").read_text()
    for service in app:
        env = service["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "deltaweb.settings.production"
        for name in env:
            assert re.search(rf"[\"']{name}[\"']", settings_source) or name == "DJANGO_SETTINGS_MODULE", name
    assert "deltaweb/gunicorn_conf.py" in " ".join(services["web"]["command"])
    assert (ROOT / "deltaweb" / "gunicorn_conf.py").exists()
    # workers and beat run under runstack's supervision, one service per container, with health checks
    from django.conf import settings

    from images.management.commands.runstack import SERVICE_QUEUES, SERVICES

    def supervised(name: str) -> list[str]:
        command = services[name]["command"]
        assert command[:3] == ["python", "manage.py", "runstack"], name
        chosen = command[command.index("--services") + 1].split(",")
        assert set(chosen) <= set(SERVICES), name
        return chosen

    consumed = set()
    for name in ("worker", "worker-sync"):
        (service,) = supervised(name)
        queue = SERVICE_QUEUES[service]
        consumed.add(queue)
        probe = services[name]["healthcheck"]["test"]
        assert probe[1:4] == ["python", "manage.py", "worker_health"]
        assert probe[probe.index("--queue") + 1] == queue
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert consumed == set(SERVICE_QUEUES.values()) >= routed | {settings.CELERY_TASK_DEFAULT_QUEUE}
    assert supervised("beat") == ["beat"]
    assert "--beat" in services["beat"]["healthcheck"]["test"]
    assert env["CELERY_BROKER_URL"].startswith("redis://")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile and "deltaweb/gunicorn_conf.py" in dockerfile


def test_requirements_are_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[0-9A-Za-z.\-+]+", line), line
