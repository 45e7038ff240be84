"""The container image under test: a Docker client that builds with BuildKit, the image built once per run (the
Dockerfile at the repository's root, this machine's pip settings passed as build secrets), containers on the host's
network listening on 127.0.0.1 only.

Why the host's network: no test leaves loopback, and Docker's bridge would need iptables and an address of its own.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "debian:bookworm-slim"  # the Dockerfile's FROM; .ci/base-image makes it where no registry is reachable
IMAGE = "fallback-test:latest"
BUILD_SECONDS = 900  # a fresh build on a busy 2-core machine took 4 minutes
SECRET_MOUNTS = ("/etc/pip.conf", "run/secrets")


def docker_client() -> str | None:
    """A docker command that can build with BuildKit: with the buildx plugin, any; without it, Debian's docker.io
    client (20.10 builds with BuildKit itself, a newer client insists on buildx)."""
    found = shutil.which("docker")
    if found and subprocess.run([found, "buildx", "version"], capture_output=True).returncode == 0:
        return found
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else found


DOCKER = docker_client()


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run one docker command; its output as text, an error with both streams when `check` and it fails."""
    assert DOCKER, "no docker client"
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def why_docker_cannot_run() -> str | None:
    """None when images can be built and run here; else the reason, for the skip (or, in CI, the failure)."""
    if DOCKER is None:
        return "no docker client (apt-get install docker.io)"
    info = subprocess.run([DOCKER, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"the Docker daemon does not answer (start dockerd): {info.stderr.strip()}"
    if subprocess.run([DOCKER, "image", "inspect", BASE_IMAGE], capture_output=True).returncode != 0:
        return f"no {BASE_IMAGE} image (docker pull it, or make it: .ci/base-image)"
    return None


def pip_settings() -> dict[str, str]:
    """This machine's pip settings that a build inside a container needs: index URLs and the CA bundle."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    settings = {}
    for line in listed:
        key, _, value = line.partition("=")
        settings[key.rsplit(".", 1)[-1]] = value.strip().strip("'\"")
    for name in ("index-url", "extra-index-url", "cert"):
        variable = "PIP_" + name.upper().replace("-", "_")
        if os.environ.get(variable):
            settings[name] = os.environ[variable]
    return settings


def build_secrets(folder: Path) -> tuple[list[str], str]:
    """`--secret` options for the build, written into `folder`, and the marker that the pip.conf holds (a test looks
    for it in every layer). Index URLs on this machine's disk (file://) cannot be seen from the build: left out."""
    settings = pip_settings()
    marker = f"fallback-build-secret-{uuid.uuid4().hex}"
    lines = [f"# {marker}", "[global]"]
    for name in ("index-url", "extra-index-url"):
        urls = [url for url in settings.get(name, "").split() if url.startswith(("http://", "https://"))]
        if urls:
            lines.append(f"{name} = {' '.join(urls)}")
    options = []
    cert = settings.get("cert")
    if cert and Path(cert).is_file():
        lines.append("cert = /run/secrets/pip-cert")
        options += ["--secret", f"id=pip-cert,src={cert}"]
    conf = folder / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    return options + ["--secret", f"id=pip.conf,src={conf}"], marker


def build_image(tag: str = IMAGE) -> tuple[str, str]:
    """Build the Dockerfile into `tag` (once at a time across test workers: the others then hit the build cache);
    the build's log and the pip.conf marker."""
    lock = Path(tempfile.gettempdir()) / "fallback-image-build.lock"
    with open(lock, "w") as held, tempfile.TemporaryDirectory() as folder:
        fcntl.flock(held, fcntl.LOCK_EX)
        options, marker = build_secrets(Path(folder))
        result = subprocess.run(
            [DOCKER, "build", "--network", "host", "--progress", "plain", *options, "-t", tag, str(ROOT)],
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=BUILD_SECONDS,
        )
    if result.returncode != 0:
        raise RuntimeError(f"docker build exited {result.returncode}:\n{result.stderr[-6000:]}")
    return result.stderr, marker


class Container:
    """One container of the image, on the host's network, `fallback serve` on 127.0.0.1:`port`."""

    def __init__(self, image: str, port: int, env: dict[str, str], volume: str | None = None):
        self.name = f"fallback-test-{uuid.uuid4().hex[:12]}"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        options = ["--network", "host", "--name", self.name, "--health-interval", "2s", "-e", f"PORT={port}"]
        for key, value in env.items():
            options += ["-e", f"{key}={value}"]
        if volume:
            options += ["-v", f"{volume}:/data"]
        # The image's command with --host: on the host's network its default (every interface) would not be loopback.
        docker("run", "-d", *options, image, "fallback", "serve", "--host", "127.0.0.1")

    def exec(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return docker("exec", self.name, *command, timeout=timeout)

    def inspect(self, template: str) -> str:
        return docker("inspect", "--format", template, self.name).stdout.strip()

    def logs(self) -> str:
        result = docker("logs", "--tail", "60", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        docker("rm", "--force", "--volumes", self.name, check=False)  # its anonymous /data too
