"""Create .venv with pip on a bare Python (Debian's python3 lacks ensurepip).

``python3 -m venv`` fails there; this creates the venv without pip and
installs pip from its wheel on PyPI, the one index this needs.
"""

import json
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

target = Path(sys.argv[1] if len(sys.argv) > 1 else ".venv")
try:
    venv.create(target, with_pip=True)
except (subprocess.CalledProcessError, OSError):
    venv.create(target, with_pip=False, clear=True)
    python = target / "bin" / "python"
    meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/pip/json", timeout=60))
    wheel = next(f for f in meta["urls"] if f["filename"].endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / wheel["filename"]
        path.write_bytes(urllib.request.urlopen(wheel["url"], timeout=120).read())
        subprocess.check_call([str(python), f"{path}/pip", "install", "--quiet", str(path)])
print(f"virtual environment ready in {target}")
