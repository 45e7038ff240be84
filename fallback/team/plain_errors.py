"""What a failed delivery means, in a sentence a person can act on; the raw text stays behind a disclosure.

The senders record what the library said (`ConnectionError: HTTPConnectionPool(host=...): Max retries exceeded
... [Errno 111] Connection refused`, `HTTP 401 Unauthorized`, `SMTPAuthenticationError: (535, ...)`); the
dashboard shows the team what that means and what to check. Pure: text in, text out.
"""

from __future__ import annotations

import re

# (what the raw text contains, case-insensitive) -> the sentence; the first match wins, so the specific come first.
# An SMTP reply code counts only where a reply has one (at the start, or smtplib's "(535, ...)"): a bare 535 also
# turns up inside port numbers ("port=59535").
_MEANINGS: tuple[tuple[str, str], ...] = (
    (
        r"^535\b|\(535,|SMTPAuthenticationError|authentication failed",
        "the mail server refused the log-in: check the user and password in FALLBACK_SMTP_URL",
    ),
    (r"SMTPRecipientsRefused|^55[0-4]\b|\(55[0-4],", "the mail server refused the recipient's address"),
    (
        r"\b4\d\d\s+4\.\d+\.\d+|SMTPDataError: \(4\d\d",
        "the mail server refused the message for now (a temporary error): fallback tries again later",
    ),
    (r"SMTPSenderRefused", "the mail server refused the sender: check FALLBACK_MAIL_FROM"),
    (r"STARTTLS|SMTPNotSupportedError", "the mail server offers no encryption, so no password was sent to it"),
    (
        r"certificate|SSLError|CERTIFICATE_VERIFY_FAILED|TLS",
        "the receiver's TLS certificate could not be verified: check its address, or its certificate",
    ),
    (
        r"Name or service not known|NameResolutionError|getaddrinfo|Temporary failure in name resolution|nodename",
        "the receiver's host name could not be found (DNS): check the address",
    ),
    (
        r"Connection refused|Errno 111|ECONNREFUSED",
        "the receiver refused the connection: nothing listens at that address and port, or a firewall says no",
    ),
    (
        r"Network is unreachable|No route to host|Errno 113|Errno 101",
        "the receiver's network cannot be reached from here",
    ),
    (r"no answer within|timed out|Timeout", "the receiver did not answer in time"),
    (
        r"Connection reset|RemoteDisconnected|Connection aborted|SMTPServerDisconnected|closed the connection",
        "the receiver closed the connection before answering",
    ),
    (r"HTTP 401|HTTP 403", "the receiver refused our request: check the token or signing secret it expects"),
    (r"HTTP 404|HTTP 405", "the receiver has no such address: check the URL"),
    (r"HTTP 410", "the receiver said it is gone for good (HTTP 410): nothing more is sent to it"),
    (r"HTTP 413", "the receiver found the message too large"),
    (r"HTTP 429", "the receiver asked us to slow down: fallback waits as long as it said, then tries again"),
    (r"HTTP 5\d\d", "the receiver failed on its side (an HTTP 5xx error): fallback tries again later"),
    (r"HTTP 4\d\d", "the receiver refused the message (an HTTP 4xx answer)"),
)
_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), sentence) for pattern, sentence in _MEANINGS)


def plain_error(raw: str | None) -> str:
    """The sentence for a recorded failure; a general one when nothing known is recognised."""
    if not raw:
        return ""
    for pattern, sentence in _COMPILED:
        if pattern.search(raw):
            return sentence
    return "the delivery failed: the details below say what the library reported"
