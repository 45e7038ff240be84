"""The container image (Dockerfile, docs/container.md): built from the lock, run as a visitor and an operator would.

Every container runs on the host's network and listens on 127.0.0.1 only (tests/containers.py). Where Docker cannot
run, these tests skip saying why; in CI (`CI` set) they fail instead, since CI must build and run the image.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import uuid

import pytest
import requests
import yaml
from containers import IMAGE, ROOT, SECRET_MOUNTS, Container, build_image, docker, why_docker_cannot_run
from helpers import every_worker_answers, form_token, wait_for
from locks import LOCK, versions
from packaging.utils import canonicalize_name
from procs import free_port
from standin import StandIn

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 60  # docker run to healthz 200 took 3 to 5 s here; a busy 2-core machine gets the margin
STOP_SECONDS = 10  # what `docker stop` waits by default before SIGKILL; docs/container.md promises a clean stop within


@pytest.fixture(scope="module")
def image():
    """The image, built for this run; its build log and the marker of the pip.conf passed as a build secret."""
    reason = why_docker_cannot_run()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build and run the image: {reason}")
        pytest.skip(reason)
    log, marker = build_image(IMAGE)
    return {"name": IMAGE, "log": log, "marker": marker}


@pytest.fixture
def main_site():
    with StandIn() as site:
        yield site


@pytest.fixture
def volume():
    name = f"fallback-test-{uuid.uuid4().hex[:12]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "--force", name, check=False)


@pytest.fixture
def containers():
    """Start containers through this; each is removed after the test (its log shown when the test failed)."""
    started: list[Container] = []

    def start(image: str, env: dict[str, str], volume: str | None = None) -> Container:
        container = Container(image, free_port(), env, volume)
        started.append(container)
        wait_until_healthy(container)
        return container

    yield start
    for container in started:
        container.remove()


def site_env(main_site: StandIn) -> dict[str, str]:
    """Visitors are sent to www.example.com, which nothing here contacts: the checker probes the stand-in."""
    return {
        "FALLBACK_MAIN_URL": "https://www.example.com",
        "FALLBACK_CHECK_URLS": main_site.url,
        "FALLBACK_FORM_MIN_SECONDS": "0",
        "FALLBACK_RATE_LIMIT": "0",
    }


def healthz(container: Container) -> int:
    try:
        return requests.get(container.url + "/_fallback/healthz", timeout=2).status_code
    except requests.RequestException:
        return 0


def wait_until_healthy(container: Container) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while healthz(container) != 200:
        if time.monotonic() > deadline or container.inspect("{{.State.Running}}") != "true":
            raise AssertionError(f"the container did not answer healthz 200:\n{container.logs()}")
        time.sleep(0.2)


def leave_a_lead(container: Container, email: str) -> None:
    """Force the page on from inside the container (as an operator would, `docker exec`), then send the form."""
    container.exec("fallback", "mode", "down", "--reason", "container test")
    page = every_worker_answers(container.url + "/pricing", 503)
    data = {"token": form_token(page.text), "path": "/pricing", "email": email, "consent": "y"}
    response = requests.post(container.url + "/_fallback/contact", data=data, allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text


def exported(container: Container) -> str:
    return container.exec("fallback", "export").stdout


def test_the_image_runs_as_a_non_root_user_with_the_locks_pins_and_no_compiler(image):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image["name"]).stdout)
    assert config["User"] == "fallback:fallback"
    assert "/data" in config["Volumes"]
    assert "/_fallback/healthz" in " ".join(config["Healthcheck"]["Test"])
    script = "id -u; echo --; command -v cc gcc c++ g++ clang make || true; echo --; pip list --format json"
    run = docker("run", "--rm", "--network", "host", image["name"], "sh", "-c", script)
    user, compilers, listed = run.stdout.split("--\n")
    assert user.strip() != "0", "the container runs as root"
    assert not compilers.strip(), f"a compiler in the final image: {compilers}"
    installed = {canonicalize_name(package["name"]): package["version"] for package in json.loads(listed)}
    assert installed.pop("fallback")
    assert installed == versions(LOCK, here=True), "the virtual environment holds the lock's pins, and nothing else"


def test_no_layer_holds_the_build_secrets(image, tmp_path):
    """The pip settings (an index, a CA bundle) were mounted for the pip steps alone: no file of any layer, and no
    line of the history, carries them."""
    assert image["marker"] not in docker("history", "--no-trunc", image["name"]).stdout
    archive = tmp_path / "image.tar"
    docker("save", "-o", str(archive), image["name"], timeout=300)
    layers = 0
    with tarfile.open(archive) as saved:
        for member in saved:
            if not member.name.endswith("layer.tar"):
                continue
            layers += 1
            with tarfile.open(fileobj=io.BytesIO(saved.extractfile(member).read())) as layer:
                for entry in layer:
                    assert not any(entry.name.lstrip("./").startswith(path.lstrip("/")) for path in SECRET_MOUNTS), (
                        f"{entry.name} in a layer"
                    )
                    if entry.isfile() and entry.size < 200_000 and entry.name.endswith((".conf", ".cfg", ".ini")):
                        assert image["marker"].encode() not in layer.extractfile(entry).read(), entry.name
    assert layers >= 3  # the base, Python's packages, the virtual environment


def test_a_container_redirects_while_the_site_is_up_and_serves_the_page_when_forced_down(image, main_site, containers):
    container = containers(image["name"], site_env(main_site))
    response = requests.get(container.url + "/pricing", allow_redirects=False, timeout=5)
    assert response.status_code == 302 and response.headers["Location"] == "https://www.example.com/pricing"
    container.exec("fallback", "mode", "down")
    page = every_worker_answers(container.url + "/pricing", 503)
    assert "<form" in page.text
    assert wait_for(lambda: container.inspect("{{.State.Health.Status}}") == "healthy", 30, "HEALTHCHECK healthy")


def test_a_lead_survives_a_new_container_on_the_same_volume(image, main_site, containers, volume):
    first = containers(image["name"], site_env(main_site), volume)
    leave_a_lead(first, "paul@example.org")
    first.remove()
    second = containers(image["name"], site_env(main_site), volume)
    assert "paul@example.org" in exported(second)
    assert "fallback.db" in second.exec("ls", "/data").stdout.split()


def test_docker_stop_ends_it_cleanly_within_ten_seconds(image, main_site, containers):
    container = containers(image["name"], site_env(main_site))
    started = time.monotonic()
    docker("stop", "--time", "30", container.name, timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed < STOP_SECONDS, f"docker stop took {elapsed:.1f} s"
    assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()


def test_it_runs_on_postgresql(image, main_site, containers, pg_cluster):
    url = pg_cluster.create_database()
    try:
        container = containers(image["name"], site_env(main_site) | {"FALLBACK_DATABASE": url})
        leave_a_lead(container, "ada@example.org")
        assert "ada@example.org" in exported(container)
        assert container.exec("ls", "-A", "/data").stdout == "", "a SQLite file on the volume: not PostgreSQL"
    finally:
        pg_cluster.drop_database(url)


def test_the_compose_example_runs_the_image_on_its_postgresql_once_healthy():
    """compose.yaml is not run here (no registry for the postgres image): its parts must at least fit together."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    app, database = compose["services"]["fallback"], compose["services"]["postgres"]
    assert app["build"] == "."
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in database["healthcheck"]["test"]
    user, name = database["environment"]["POSTGRES_USER"], database["environment"]["POSTGRES_DB"]
    password = database["environment"]["POSTGRES_PASSWORD"]  # `${POSTGRES_PASSWORD:?...}`: from .env, in both
    url = app["environment"]["FALLBACK_DATABASE"]
    assert url == f"postgresql://{user}:{password}@postgres:5432/{name}"
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in database["volumes"])
    assert app["stop_grace_period"] == f"{STOP_SECONDS}s"
