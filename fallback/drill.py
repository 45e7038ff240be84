"""`fallback drill`: the pre-show checklist as pure check functions, each returning pass / warn / fail items."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

from .config import Settings
from .parsers import is_postgres_url

PASS, WARN, FAIL = "pass", "warn", "fail"
MAX_TTL = 300  # seconds: above this, a DNS switch takes longer than a TV slot's first minutes
MIN_CERT_DAYS = 14
EPHEMERAL_FILESYSTEMS = {"tmpfs", "ramfs"}
HEALTHZ_PATH = "/_fallback/healthz"


@dataclasses.dataclass(frozen=True)
class Item:
    """One checklist item: its name, pass / warn / fail, one line why, and what to do when it is not passing."""

    name: str
    status: str
    detail: str
    advice: str = ""

    def as_dict(self) -> dict[str, str]:
        """The item as JSON-ready keys: name, status, detail, advice."""
        return dataclasses.asdict(self)


def failed(items: list[Item]) -> bool:
    """Whether any item fails (drill's exit status is 1 then)."""
    return any(item.status == FAIL for item in items)


# Main site.


def main_site_items(settings: Settings) -> list[Item]:
    """Every check URL answering within the limits, then the main URL's Cache-Control."""
    from .probe import probe

    items = []
    for url in settings.check_urls:
        result = probe(url, settings.check_timeout, settings.max_latency, settings.expect_text)
        took = f"{result.latency * 1000:.0f} ms"
        if result.ok:
            items.append(Item(f"main site {result.url}", PASS, f"HTTP {result.status} in {took}"))
        else:
            items.append(
                Item(
                    f"main site {result.url}",
                    FAIL,
                    f"{result.reason} ({took})",
                    "fix the main site, or the check URL and limits (FALLBACK_CHECK_URLS, FALLBACK_MAX_LATENCY,"
                    " FALLBACK_EXPECT_TEXT), before the show",
                )
            )
    if settings.main_url:
        items.append(cache_control_item(settings.main_url, settings.check_timeout))
    return items


def cache_control_item(url: str, timeout: float) -> Item:
    """Whether the main URL's Cache-Control lets a CDN or shared cache absorb a spike."""
    import requests

    name = "main site caching"
    try:
        with requests.get(url, timeout=timeout, stream=True, headers={"User-Agent": "fallback-drill"}) as response:
            header = response.headers.get("Cache-Control")
    except requests.RequestException as error:
        return Item(name, FAIL, f"no answer to read Cache-Control from: {type(error).__name__}", "fix the main site")
    advice = "serve the pages a visitor lands on with `Cache-Control: public, max-age=60` (or more) behind a CDN"
    if not header:
        return Item(name, WARN, "no Cache-Control header: a CDN cannot absorb the spike", advice)
    directives = {part.strip().split("=", 1)[0].lower() for part in header.split(",")}
    blocking = sorted(directives & {"no-store", "private"})
    if blocking:
        return Item(
            name, WARN, f"Cache-Control: {header} ({', '.join(blocking)}): a CDN cannot absorb the spike", advice
        )
    return Item(name, PASS, f"Cache-Control: {header}")


# DNS.


def parse_resolver(value: str) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 address in brackets when it has a port) as (host, port); port 53 by default."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, 53


def dns_item(host: str, resolver: tuple[str, int] | None = None, lifetime: float = 5.0) -> Item:
    """The host's A/AAAA records through dnspython, following CNAMEs; the largest TTL on the chain decides."""
    import dns.exception
    import dns.rdatatype
    import dns.resolver

    name = f"DNS {host}"
    try:
        ipaddress.ip_address(host)
        return Item(name, WARN, "the main URL is an IP address: no DNS switch is possible", "use a host name")
    except ValueError:
        pass
    if resolver:
        looker = dns.resolver.Resolver(configure=False)
        looker.nameservers = [resolver[0]]
        looker.port = resolver[1]
    else:
        looker = dns.resolver.Resolver()
    looker.timeout = looker.lifetime = lifetime
    looker.cache = None
    answer = None
    advice_resolve = "check the host name in FALLBACK_MAIN_URL and its DNS records"
    try:
        for rdtype in ("A", "AAAA"):
            answer = looker.resolve(host, rdtype, raise_on_no_answer=False)
            if answer.rrset is not None:
                break
    except dns.resolver.NXDOMAIN:
        return Item(name, FAIL, "the host does not exist (NXDOMAIN)", advice_resolve)
    except dns.exception.Timeout:
        return Item(name, FAIL, f"no answer from the resolver within {lifetime:g}s", "check --resolver or the network")
    except dns.exception.DNSException as error:
        return Item(name, FAIL, f"look-up failed: {error}", advice_resolve)
    if answer is None or answer.rrset is None:
        return Item(name, FAIL, "the host has no A or AAAA record", advice_resolve)
    chain = [rrset for rrset in answer.response.answer if rrset.rdtype in (dns.rdatatype.CNAME, answer.rdtype)]
    ttl = max(rrset.ttl for rrset in chain)
    hops = [str(rrset.name).rstrip(".") for rrset in chain if rrset.rdtype == dns.rdatatype.CNAME]
    via = f" via CNAME {' -> '.join(hops)}" if hops else ""
    addresses = ", ".join(sorted(str(record) for record in answer.rrset))
    detail = f"{addresses}{via}; largest TTL {ttl} s"
    if ttl > MAX_TTL:
        return Item(
            name,
            WARN,
            f"{detail}: a DNS switch would take up to {ttl} s",
            f"lower the TTL of every record on the chain to {MAX_TTL} s or less, at least one old TTL before the show",
        )
    return Item(name, PASS, detail)


# Standby.


def secrets_items(settings: Settings) -> list[Item]:
    """Whether the admin password and the secret key are set rather than missing or generated."""
    checks = (
        ("admin password", "ADMIN_PASSWORD", settings.admin_password, "the admin area answers 404",
         "set FALLBACK_ADMIN_PASSWORD (12 characters at least) to switch the page and read leads in the show"),
        ("secret key", "SECRET_KEY", settings.secret_key, "one is generated and kept in the database",
         "set FALLBACK_SECRET_KEY, so a new database does not void every form and session"),
    )  # fmt: skip
    return [
        Item(name, PASS, f"FALLBACK_{variable} is set")
        if value
        else Item(name, WARN, f"FALLBACK_{variable} is not set: {without}", advice)
        for name, variable, value, without, advice in checks
    ]


def public_url_item(public_url: str | None, timeout: float) -> Item:
    """Whether FALLBACK_PUBLIC_URL answers /_fallback/healthz with 200 from where drill runs."""
    import requests

    name = "standby public URL"
    if not public_url:
        return Item(
            name,
            WARN,
            "FALLBACK_PUBLIC_URL is not set: nothing tells where visitors reach fallback",
            "set FALLBACK_PUBLIC_URL to the standby's address and run drill again",
        )
    url = public_url.rstrip("/") + HEALTHZ_PATH
    from .redact import redact_url

    shown = redact_url(url)
    try:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as error:
        return Item(
            name,
            FAIL,
            f"{shown} is unreachable ({type(error).__name__})",
            "make the standby reachable at FALLBACK_PUBLIC_URL (DNS, TLS, firewall), or fix the setting",
        )
    if response.status_code != 200:
        reason = response.text.strip()[:40]
        return Item(
            name,
            FAIL,
            f"{shown} answered HTTP {response.status_code} {reason}".rstrip(),
            "see the standby's log: its database must be writable and its checker running",
        )
    return Item(name, PASS, f"{shown} answered 200")


def filesystem_of(path: Path, mounts: str) -> str | None:
    """The filesystem type of the mount holding `path`, from /proc/mounts' text (the longest mount point wins)."""
    best, fstype = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return fstype


def database_item(database: str, mounts: str | None = None) -> Item:
    """Whether the database (FALLBACK_DATABASE) outlives a restart: a SQLite file on tmpfs does not."""
    name = "durable database"
    if is_postgres_url(database):
        return Item(name, PASS, "PostgreSQL (not connected to by this check)")
    folder = Path(database).expanduser().resolve().parent
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return Item(name, PASS, f"SQLite in {folder} (no /proc/mounts to check the filesystem)")
    fstype = filesystem_of(folder, mounts)
    if fstype in EPHEMERAL_FILESYSTEMS:
        return Item(
            name,
            WARN,
            f"SQLite in {folder}, on {fstype}: leads are lost on reboot",
            "put FALLBACK_DATABASE on a persistent disk, or use PostgreSQL",
        )
    return Item(name, PASS, f"SQLite in {folder} ({fstype or 'unknown filesystem'})")


def standby_items(settings: Settings) -> list[Item]:
    """The standby's own items: secrets, the public URL's health, a durable database."""
    return [
        *secrets_items(settings),
        public_url_item(settings.public_url, settings.check_timeout),
        database_item(settings.database),
    ]


# TLS.


def tls_item(url: str, timeout: float = 5.0, cafile: str | None = None, now: float | None = None) -> Item | None:
    """Days left on the certificate of an https URL (warn under 14, fail expired or invalid); None for http."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host, port = parts.hostname, parts.port or 443
    name = f"TLS certificate {host}"
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as error:
        if error.verify_code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
            return Item(name, FAIL, "the certificate has expired", "renew the certificate now")
        return Item(name, FAIL, f"invalid certificate: {error.verify_message}", "install a valid certificate")
    except (OSError, ssl.SSLError) as error:
        return Item(name, FAIL, f"no TLS connection: {error}", "check the main site's TLS set-up")
    if not cert:
        return Item(name, FAIL, "the server sent no certificate", "install a valid certificate")
    expires = ssl.cert_time_to_seconds(str(cert["notAfter"]))
    days = (expires - (time.time() if now is None else now)) / 86400
    detail = f"expires {cert['notAfter']} ({days:.0f} days left)"
    if days < MIN_CERT_DAYS:
        return Item(name, WARN, detail, "renew the certificate before the show")
    return Item(name, PASS, detail)


def run_drill(settings: Settings, resolver: tuple[str, int] | None = None) -> list[Item]:
    """Every item of the checklist, in order: main site, DNS, standby, TLS."""
    main_url = settings.require_main_url()
    items = main_site_items(settings)
    host = urlsplit(main_url).hostname
    if host:
        items.append(dns_item(host, resolver, lifetime=max(settings.check_timeout, 2.0)))
    items.extend(standby_items(settings))
    tls = tls_item(main_url, settings.check_timeout)
    if tls:
        items.append(tls)
    return items


def table(items: list[Item]) -> str:
    """The items as a readable table: status, name, why; the advice on the next line when not passing."""
    width = max((len(item.name) for item in items), default=0)
    lines = []
    for item in items:
        lines.append(f"{item.status.upper():4}  {item.name:<{width}}  {item.detail}")
        if item.status != PASS and item.advice:
            lines.append(f"{'':4}  {'':<{width}}  -> {item.advice}")
    counts = {status: sum(item.status == status for item in items) for status in (PASS, WARN, FAIL)}
    lines.append(f"{counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail")
    return "\n".join(lines)
