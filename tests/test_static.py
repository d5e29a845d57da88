"""Static files as deployed: collectstatic builds WhiteNoise's compressed manifest,
and the app itself serves the admin's assets (no web server in front needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, django
django.setup()
from django.templatetags.static import static
from django.test import Client
client = Client()
url = static("admin/css/base.css")
plain = client.get(url)
gzipped = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
print(json.dumps({
    "url": url,
    "status": plain.status_code,
    "cache": plain.get("Cache-Control", ""),
    "encoding": gzipped.get("Content-Encoding", ""),
    "console_css": client.get(static("images/console.css")).status_code,
    "missing": client.get("/static/admin/css/nosuch.css").status_code,
    "favicon": client.get("/favicon.ico").status_code,
}))
"""


def production(static_root: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_SETTINGS_MODULE": "deltaweb.settings.production",
        "SECRET_KEY": "k" * 50,
        "STATIC_ROOT": str(static_root),
        "ALLOWED_HOSTS": "testserver",
    }
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_collectstatic_builds_the_compressed_manifest_and_the_app_serves_it(tmp_path):
    # given: collectstatic as the Dockerfile and `make run` run it
    built = production(tmp_path, sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0")
    assert built.returncode == 0, built.stderr
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    hashed = manifest["admin/css/base.css"]
    assert hashed != "admin/css/base.css" and (tmp_path / hashed).exists()
    assert (tmp_path / f"{hashed}.gz").exists()
    assert "images/console.css" in manifest and "images/admin_account.js" in manifest
    # when: the app (WhiteNoise in its middleware) answers for them
    served = production(tmp_path, sys.executable, "-c", PROBE)
    assert served.returncode == 0, served.stderr
    answer = json.loads(served.stdout.strip().splitlines()[-1])
    # then: hashed URLs, cached for good, compressed when asked, nothing missing
    assert answer["url"] == f"/static/{hashed}"
    assert answer["status"] == 200 and "immutable" in answer["cache"]
    assert answer["encoding"] == "gzip"
    assert answer["console_css"] == 200 and answer["favicon"] == 200
    assert answer["missing"] == 404


def test_every_way_of_starting_collects_static_files():
    makefile = (ROOT / "Makefile").read_text()
    run_target = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "collectstatic --noinput" in run_target
    assert "collectstatic --noinput" in (ROOT / "Dockerfile").read_text()
    assert "/staticfiles/" in (ROOT / ".gitignore").read_text().splitlines()
