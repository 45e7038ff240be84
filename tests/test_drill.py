"""`fallback drill`: the pre-show checklist, against servers on 127.0.0.1 only (HTTP, DNS by dnslib, TLS)."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from dnslib import CNAME, QTYPE, RR, A
from dnslib.server import DNSLogger, DNSServer
from helpers import self_signed_certificate
from procs import free_port

from fallback import drill
from fallback.cli import cli
from fallback.core.settings import Settings

HOST = "127.0.0.1"


# A main site (and standby) on 127.0.0.1 answering chosen headers.


class _Site(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        cache_control: str | None = None,
        healthz: int = 200,
        context: ssl.SSLContext | None = None,
        redirect_to: str | None = None,
    ):
        self.cache_control = cache_control
        self.healthz = healthz
        self.redirect_to = redirect_to
        super().__init__((HOST, 0), _Handler)
        if context:
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 5

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        if self.server.redirect_to and not self.path.startswith("/_fallback/"):
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to.rstrip("/") + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = self.server.healthz if self.path == drill.HEALTHZ_PATH else 200
        body = b"<h1>Welcome</h1>" if status == 200 else b"checker"
        self.send_response(status)
        if self.server.cache_control:
            self.send_header("Cache-Control", self.server.cache_control)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def settings_for(main_url: str, **extra: str) -> Settings:
    return Settings.from_env({"FALLBACK_MAIN_URL": main_url, "FALLBACK_CHECK_TIMEOUT": "2", **extra})


# Main site.


def test_a_main_site_answering_public_max_age_passes_both_items():
    with _Site("public, max-age=60") as site:
        items = drill.main_site_items(settings_for(site.url))
    assert [item.status for item in items] == ["pass", "pass"]
    assert "public, max-age=60" in items[1].detail


@pytest.mark.parametrize("header", ["no-store", "private, max-age=0", None])
def test_a_main_site_a_cdn_cannot_cache_is_a_warning_with_advice(header):
    with _Site(header) as site:
        item = drill.main_site_items(settings_for(site.url))[-1]
    assert (item.name, item.status) == ("main site caching", "warn")
    assert "CDN cannot absorb the spike" in item.detail and "max-age" in item.advice


def test_every_check_url_is_probed_and_one_that_does_not_answer_fails():
    with _Site("public, max-age=60") as site:
        dead = f"http://{HOST}:{free_port()}/health"
        items = drill.main_site_items(settings_for(site.url, FALLBACK_CHECK_URLS=f"{site.url},{dead}"))
    assert [item.status for item in items] == ["pass", "fail", "pass"]
    assert "connection refused" in items[1].detail and items[1].advice


def test_a_main_site_missing_the_expected_text_fails():
    with _Site("public") as site:
        item = drill.main_site_items(settings_for(site.url, FALLBACK_EXPECT_TEXT="Goodbye"))[0]
    assert item.status == "fail" and "Goodbye" in item.detail


# DNS, answered by dnslib on 127.0.0.1.


class _Zone:
    """A dnslib resolver answering from {name: (ttl, "A" or "CNAME", value)}, following CNAMEs like a recursor."""

    def __init__(self, records: dict[str, tuple[int, str, str]]):
        self.records = records

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if name not in self.records:
            reply.header.rcode = 3  # NXDOMAIN
            return reply
        for _ in range(10):
            if name not in self.records:
                break
            ttl, kind, value = self.records[name]
            if kind == "CNAME":
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(value), ttl=ttl))
                name = value
            else:
                if request.q.qtype == QTYPE.A:
                    reply.add_answer(RR(name, QTYPE.A, rdata=A(value), ttl=ttl))
                break
        return reply


@pytest.fixture
def dns_server():
    servers = []

    def start(records):
        server = DNSServer(_Zone(records), address=HOST, port=0, logger=DNSLogger(logf=lambda text: None))
        server.start_thread()
        servers.append(server)
        return (HOST, server.server.server_address[1])

    yield start
    for server in servers:
        server.stop()
        server.server.server_close()


def test_a_host_with_a_short_ttl_passes(dns_server):
    resolver = dns_server({"www.example.test": (60, "A", "192.0.2.10")})
    item = drill.dns_item("www.example.test", resolver)
    assert item.status == "pass" and "192.0.2.10" in item.detail and "TTL 60 s" in item.detail


def test_a_ttl_above_five_minutes_is_a_warning(dns_server):
    resolver = dns_server({"www.example.test": (3600, "A", "192.0.2.10")})
    item = drill.dns_item("www.example.test", resolver)
    assert item.status == "warn" and "3600 s" in item.detail and "300 s" in item.advice


def test_the_largest_ttl_on_a_cname_chain_is_the_one_reported(dns_server):
    resolver = dns_server(
        {
            "www.example.test": (86400, "CNAME", "shop.cdn.test"),
            "shop.cdn.test": (120, "CNAME", "edge.cdn.test"),
            "edge.cdn.test": (30, "A", "192.0.2.20"),
        }
    )
    item = drill.dns_item("www.example.test", resolver)
    assert item.status == "warn" and "largest TTL 86400 s" in item.detail
    assert "www.example.test -> shop.cdn.test" in item.detail and "192.0.2.20" in item.detail


def test_a_short_cname_chain_passes(dns_server):
    resolver = dns_server(
        {"www.example.test": (60, "CNAME", "edge.cdn.test"), "edge.cdn.test": (20, "A", "192.0.2.20")}
    )
    item = drill.dns_item("www.example.test", resolver)
    assert item.status == "pass" and "largest TTL 60 s" in item.detail


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_an_ip_address_is_no_warning_and_says_only_a_dns_switch_needs_a_host_name(address):
    item = drill.dns_item(address)
    assert item.status == "pass" and "topology 2" in item.detail and "host name" in item.detail


def test_a_host_that_does_not_resolve_fails(dns_server):
    resolver = dns_server({"www.example.test": (60, "A", "192.0.2.10")})
    item = drill.dns_item("nowhere.example.test", resolver)
    assert item.status == "fail" and "NXDOMAIN" in item.detail and item.advice


def test_a_resolver_that_does_not_answer_fails_within_its_lifetime():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        item = drill.dns_item("www.example.test", (HOST, silent.getsockname()[1]), lifetime=0.5)
    assert item.status == "fail" and "no answer" in item.detail


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("1.1.1.1", ("1.1.1.1", 53)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_the_resolver_option_reads_host_and_port(value, expected):
    assert drill.parse_resolver(value) == expected


# Standby.


def test_missing_secrets_are_warnings_and_set_ones_pass():
    unset = drill.secrets_items(settings_for("http://127.0.0.1:1/"))
    assert [item.status for item in unset] == ["warn", "warn"]
    assert "FALLBACK_SECRET_KEY" in unset[1].advice
    both = {"FALLBACK_SECRET_KEY": "k" * 32, "FALLBACK_ADMIN_PASSWORD": "a long password"}
    assert [item.status for item in drill.secrets_items(settings_for("http://127.0.0.1:1/", **both))] == ["pass"] * 2


def test_a_public_url_answering_healthz_passes():
    with _Site(healthz=200) as site:
        assert drill.public_url_item(site.url, 2).status == "pass"


def test_a_public_url_whose_healthz_fails_is_a_failure():
    with _Site(healthz=503) as site:
        item = drill.public_url_item(site.url, 2)
    assert item.status == "fail" and "503" in item.detail


def test_an_unreachable_public_url_fails():
    item = drill.public_url_item(f"http://{HOST}:{free_port()}", 2)
    assert item.status == "fail" and "unreachable" in item.detail and item.advice


def test_no_public_url_is_a_warning():
    assert drill.public_url_item(None, 2).status == "warn"


MOUNTS = "/dev/sda1 / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/sdb1 /tmp/disk xfs rw 0 0\n"


def test_a_sqlite_file_on_tmpfs_is_a_warning():
    item = drill.database_item("/tmp/x/fallback.db", MOUNTS)
    assert item.status == "warn" and "tmpfs" in item.detail and "persistent" in item.advice


def test_a_sqlite_file_on_a_disk_passes_and_the_longest_mount_point_wins():
    for path in ("/srv/fallback.db", "/tmp/disk/fallback.db", "/tmp/disk/deeper/fallback.db"):
        assert drill.database_item(path, MOUNTS).status == "pass", path


def test_a_postgresql_database_that_answers_passes_with_its_version(pg_cluster):
    url = pg_cluster.create_database()
    try:
        item = drill.database_item(url, "")
    finally:
        pg_cluster.drop_database(url)
    assert item.status == "pass" and "PostgreSQL" in item.detail and "answers" in item.detail


def test_a_postgresql_database_that_does_not_answer_fails_without_its_password():
    item = drill.database_item(f"postgresql://shop:s3cret@127.0.0.1:{free_port()}/fallback", "", timeout=2)
    assert item.status == "fail" and "does not answer" in item.detail and "s3cret" not in item.detail
    assert "FALLBACK_DATABASE" in item.advice


# TLS, with certificates made by openssl in the test.


def make_certificate(folder: Path, start: str | None = None, end: str | None = None, days: int = 90) -> Path:
    """A self-signed certificate for 127.0.0.1 (key and certificate in one file): valid `days`, or from start to end."""
    key, pem = folder / "key.pem", folder / "cert.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    if start is None:
        pem, key = self_signed_certificate(folder, days)
    else:  # openssl 3.0's req has no -not_before: `openssl ca -selfsign` takes any dates
        (folder / "index.txt").write_text("")
        (folder / "serial").write_text("01\n")
        (folder / "ca.cnf").write_text(
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\n"
            "policy=p\ncopy_extensions=copy\n[p]\ncommonName=supplied\n"
        )
        run = {"check": True, "capture_output": True, "timeout": 30, "cwd": folder}
        subprocess.run(
            ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", "r.csr"] + subject,
            **run,
        )
        subprocess.run(
            ["openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", key, "-in", "r.csr", "-out", pem]
            + ["-startdate", start, "-enddate", end],
            **run,
        )
    both = folder / "both.pem"
    both.write_text(key.read_text() + pem.read_text())
    return both


def tls_site(certificate: Path) -> _Site:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate)
    return _Site("public", context=context)


def tls_item_for(certificate: Path, cafile: Path | None = None) -> drill.Item | None:
    with tls_site(certificate) as site:
        url = f"https://{HOST}:{site.server_address[1]}/"
        return drill.tls_item(url, 3, cafile=str(cafile or certificate))


def test_a_valid_certificate_passes_with_its_days_left(tmp_path):
    item = tls_item_for(make_certificate(tmp_path, days=90))
    assert item is not None and item.status == "pass" and "days left" in item.detail


def test_a_certificate_expiring_in_a_week_is_a_warning(tmp_path):
    item = tls_item_for(make_certificate(tmp_path, days=7))
    assert item is not None and item.status == "warn" and "renew" in item.advice


def test_an_expired_certificate_fails(tmp_path):
    item = tls_item_for(make_certificate(tmp_path, start="20200101000000Z", end="20200201000000Z"))
    assert item is not None and item.status == "fail" and "expired" in item.detail


def test_an_untrusted_certificate_fails_as_invalid(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    trusted, other = make_certificate(tmp_path / "a"), make_certificate(tmp_path / "b")
    item = tls_item_for(other, cafile=trusted)
    assert item is not None and item.status == "fail" and "invalid certificate" in item.detail


def test_an_http_main_url_has_no_tls_item():
    assert drill.tls_item("http://127.0.0.1:1/") is None


# The command.


def drill_env(site_url: str, public_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "FALLBACK_MAIN_URL": site_url,
        "FALLBACK_PUBLIC_URL": public_url,
        "FALLBACK_DATABASE": str(tmp_path / "fallback.db"),
        "FALLBACK_SECRET_KEY": "k" * 32,
        "FALLBACK_ADMIN_PASSWORD": "a long password",
        "FALLBACK_CHECK_TIMEOUT": "2",
    }


def test_drill_prints_a_table_and_exits_0_when_nothing_fails_without_a_database(tmp_path):
    with _Site("public, max-age=60") as site, _Site(healthz=200, redirect_to=site.url) as standby:
        result = CliRunner().invoke(cli, ["drill"], env=drill_env(site.url, standby.url, tmp_path))
    assert result.exit_code == 0, result.output
    assert "PASS  main site caching" in result.output and "fail" in result.output.splitlines()[-1]
    assert "PASS  DNS 127.0.0.1" in result.output  # an IP address: nothing to look up, no warning
    assert "PASS  visitor path" in result.output and "redirected to the main site" in result.output
    assert not (tmp_path / "fallback.db").exists()


def test_drill_json_lists_items_with_four_keys_and_exits_1_when_one_fails(tmp_path):
    with _Site("no-store") as site:
        env = drill_env(site.url, f"http://{HOST}:{free_port()}", tmp_path)
        result = CliRunner().invoke(cli, ["drill", "--json"], env=env)
    assert result.exit_code == 1
    items = json.loads(result.output)
    assert all(set(item) == {"name", "status", "detail", "advice"} for item in items)
    statuses = {item["name"]: item["status"] for item in items}
    assert statuses["main site caching"] == "warn" and statuses["standby public URL"] == "fail"


def test_drill_without_a_main_url_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["drill"], env={"FALLBACK_MAIN_URL": "", "FALLBACK_DATABASE": str(tmp_path / "x")})
    assert result.exit_code == 2 and "FALLBACK_MAIN_URL" in result.output


@pytest.mark.parametrize("expiry", ["2m", "61s"])
def test_a_rehearsal_expiry_over_a_minute_is_refused_in_one_line(tmp_path, expiry):
    env = drill_env("http://127.0.0.1:1/", "http://127.0.0.1:1", tmp_path)
    result = CliRunner().invoke(cli, ["drill", "--rehearse", "--expiry", expiry], env=env)
    assert result.exit_code == 2 and "between 1 and 60 seconds" in result.output
    assert not (tmp_path / "fallback.db").exists()


def test_the_burst_reports_its_rate_and_the_nearest_rank_p99():
    from fallback.drill.load import Burst

    measured = Burst(latencies=[i / 1000 for i in range(1, 201)], seconds=2.0)
    assert measured.rate == 100.0
    assert measured.percentile(0.99) == 0.198  # the 198th of 200 answers
    assert Burst().percentile(0.99) == 0.0 and Burst().rate == 0.0
