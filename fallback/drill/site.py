"""The main site's items: every check URL, its Cache-Control, its host's DNS TTL, its TLS certificate."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from urllib.parse import urlsplit

from fallback.core.settings import Settings
from fallback.drill.items import FAIL, PASS, WARN, Item

MAX_TTL = 300  # seconds: above this, a DNS switch takes longer than a TV slot's first minutes
MIN_CERT_DAYS = 14


# Main site.


def main_site_items(settings: Settings) -> list[Item]:
    """Every check URL answering within the limits, then the main URL's Cache-Control."""
    from fallback.checking.probe import probe

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
        # Behind a proxy or a campaign URL, no DNS is switched: only a DNS switch (topology 2) needs a host name.
        return Item(name, PASS, "an IP address: nothing to look up; a DNS switch (topology 2) would need a host name")
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
