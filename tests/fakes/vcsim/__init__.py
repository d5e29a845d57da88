"""VMware's vCenter simulator (vcsim) for the vSphere tests.

Debian's ``golang-github-vmware-govmomi-dev`` ships the simulator as a library
only; ``main.go`` beside this file is the command. It is built on demand in
GOPATH mode (offline, from the packages alone) into ``.cache/vcsim/``, keyed by
a hash of the source and the Go version, so edits rebuild and nothing else does.

Where Go or govmomi is missing the vSphere tests skip with the command that
installs them, except under ``CI=true``, where they must run and so fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import selectors
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SOURCE_DIR = Path(__file__).resolve().parent
REPO = SOURCE_DIR.parents[2]
CACHE = REPO / ".cache" / "vcsim"
GOCODE = Path("/usr/share/gocode")
PACKAGES = "golang-go golang-github-vmware-govmomi-dev"
HINT = f"the vSphere tests need vcsim, built from Debian's packages: apt-get install {PACKAGES}"
START_TIMEOUT = 30.0


class VcsimUnavailable(Exception):
    """Go or govmomi's simulator library is not installed here."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _go_env() -> dict[str, str]:
    return {
        **os.environ,
        "GO111MODULE": "off",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOPATH": f"{CACHE / 'gopath'}:{GOCODE}",
        "GOCACHE": str(CACHE / "go-build"),
    }


def build() -> Path:
    """The vcsim binary for the current main.go, built if it is not cached yet."""
    go = shutil.which("go")
    if go is None or not (GOCODE / "src/github.com/vmware/govmomi/simulator").is_dir():
        raise VcsimUnavailable(HINT)
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(version.encode())
    for source in sorted(SOURCE_DIR.glob("*.go")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    binary = CACHE / f"vcsim-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time across test processes
        if binary.exists():
            return binary
        partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
        done = subprocess.run(
            [go, "build", "-o", str(partial), "."],
            cwd=SOURCE_DIR,
            env=_go_env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"building vcsim failed:\n{done.stdout}{done.stderr}")
        os.replace(partial, binary)
        for stale in CACHE.glob("vcsim-*"):
            if stale != binary:
                stale.unlink(missing_ok=True)
    return binary


def binary_or_skip() -> Path:
    """The binary; otherwise a skip that says how to enable the tests (a failure under CI)."""
    try:
        return build()
    except VcsimUnavailable as exc:
        if in_ci():
            pytest.fail(f"{exc} (CI=true: the vSphere tests must run; .ci/run installs them)")
        pytest.skip(str(exc))


@dataclass
class Vcsim:
    """One running simulator: vCenter 6.5 with datacenter DC0, a cluster, hosts and VMs."""

    process: subprocess.Popen
    url: str
    ca_file: Path
    username: str
    password: str
    log: Path
    _si: object | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 443

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        username: str = "vcuser",
        password: str = "vcpass",
        vms: int = 2,
        datacenters: int = 1,
        autostart: bool = True,
        idle_timeout: str = "0",
    ) -> Vcsim:
        binary = binary_or_skip()
        workdir.mkdir(parents=True, exist_ok=True)
        ca_file, log = workdir / "vcsim-ca.pem", workdir / "vcsim.log"
        argv = [
            str(binary),
            "-listen=127.0.0.1:0",
            f"-ca-out={ca_file}",
            f"-username={username}",
            f"-password={password}",
            f"-vm={vms}",
            f"-dc={datacenters}",
            f"-autostart={'true' if autostart else 'false'}",
            f"-idle-timeout={idle_timeout}",
        ]
        with open(log, "ab") as stderr:
            # stdin stays open: the simulator exits when it closes, even if we die
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=workdir
            )
        url = cls._read_url(process, log)
        return cls(process, url, ca_file, username, password, log)

    @staticmethod
    def _read_url(process: subprocess.Popen, log: Path) -> str:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if selector.select(START_TIMEOUT):
                line = process.stdout.readline().decode().strip()
                if line.startswith("VCSIM_URL="):
                    return line.removeprefix("VCSIM_URL=")
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(f"vcsim did not start:\n{log.read_text(errors='replace')[-3000:]}")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connect(self):
        """A pyvmomi ServiceInstance of the test's own, for arranging the inventory."""
        if self._si is None:
            from pyVim.connect import SmartConnect

            self._si = SmartConnect(
                host=self.host,
                port=self.port,
                user=self.username,
                pwd=self.password,
                sslContext=self.ssl_context(),
            )
        return self._si

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def running(workdir: Path, **options) -> Iterator[Vcsim]:
    sim = Vcsim.start(workdir, **options)
    try:
        yield sim
    finally:
        sim.stop()
