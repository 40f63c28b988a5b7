"""E-mail and IP address redaction (optional; RefinedWeb does none).

FineWeb (Penedo et al. 2024) anonymizes e-mail addresses and public IP addresses with
datatrove's ``PIIFormatter``, which swaps in realistic-looking placeholders so that the
text still reads naturally for a language model. We do the same with addresses reserved
for documentation, which can never be anyone's: ``email@example.com`` (RFC 2606),
``192.0.2.1`` (TEST-NET-1, RFC 5737) and ``2001:db8::1`` (RFC 3849).

Unlike datatrove, private and loopback IPv4 addresses (10.x, 192.168.x, 127.x, ...) are
redacted too by default (``keep_private_ips=False``): they are rarely sensitive but equally
rarely useful, and one rule is easier to audit. IPv6 candidates are confirmed with
``ipaddress`` so that clock times ("12:30:45") and C++ scopes ("std::map") are left alone.
Version strings of the form a.b.c.d with every part <= 255 are indistinguishable from IPv4
addresses and are redacted (datatrove does the same).

E-mail addresses are redacted from the first character of the local part that an address
can start with (RFC 5322 atext, ``_ % + -`` included: ``_support@example.com`` and
``-john@example.com`` are redacted whole). An address cannot start with a dot, so dots in
front of it stay in the text: ``Contact ...john@example.com`` becomes ``Contact
...email@example.com``. A mailbox at an IP address (``user@203.0.113.5`` or the RFC 5321
literal ``user@[203.0.113.5]``) is one e-mail address: it is replaced whole by the e-mail
placeholder and counted as an e-mail, not as an IPv4 address with the user name left
behind; so is an RFC 5321 IPv6 literal (``user@[IPv6:2001:db8::7]``). A bare IPv6 address
after an ``@`` is not an e-mail form: its address is redacted as IPv6.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# Local part: RFC 5322's dot-atom characters that occur in practice (letters and digits,
# Unicode ones too as RFC 6531 allows, and ``_ % + -``), dots inside. It may start with
# any of them but ".", so leading dots ("Contact ...john@") are the text's punctuation:
# they are captured apart and put back. Dots inside or at the end ("first..last@",
# "john.@") are malformed but still name someone: redacted with the rest.
# Domain: a host name with an alphabetic TLD, or an IPv4 address, bare or as an RFC 5321
# address literal ("user@[192.0.2.7]", "user@[IPv6:2001:db8::7]"): a mailbox at an IP is
# one e-mail address. An
# underscore may follow the TLD (Markdown's "_john@example.com_").
EMAIL_RE = re.compile(
    r"(?<![\w.%+-])(?P<dots>\.*)(?P<address>[\w%+-][\w.%+-]*@"
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![^\W_]|-)"
    rf"|\[{_IPV4}\]|\[IPv6:[0-9A-Fa-f:.]+\]|{_IPV4}(?!\.?\d)(?![\w-])))"
)
IPV4_RE = re.compile(rf"(?<![\w.]){_IPV4}(?!\.?\d)(?!\w)")
IPV6_CANDIDATE_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.\d)"
)


@dataclass(frozen=True)
class PiiPlaceholders:
    email: str = "email@example.com"
    ipv4: str = "192.0.2.1"
    ipv6: str = "2001:db8::1"


def _is_ipv6(candidate: str) -> bool:
    if candidate.count(":") < 2 or candidate.strip(":") == "":  # "::" alone is no address
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def redact_pii(
    text: str,
    placeholders: PiiPlaceholders = PiiPlaceholders(),
    keep_private_ips: bool = False,
) -> tuple[str, int, int, int]:
    """Return (text, e-mails replaced, IPv4 replaced, IPv6 replaced)."""
    counts = [0, 0, 0]

    def email(m: re.Match) -> str:
        if m.group("address") == placeholders.email:
            return m.group(0)
        counts[0] += 1
        return m.group("dots") + placeholders.email

    def ipv4(m: re.Match) -> str:
        found = m.group(0)
        if found == placeholders.ipv4:
            return found
        if keep_private_ips and not ipaddress.IPv4Address(found).is_global:
            return found
        counts[1] += 1
        return placeholders.ipv4

    def ipv6(m: re.Match) -> str:
        found = m.group(0)
        if found == placeholders.ipv6 or not _is_ipv6(found):
            return found
        if keep_private_ips and not ipaddress.IPv6Address(found).is_global:
            return found
        counts[2] += 1
        return placeholders.ipv6

    if "@" in text:
        text = EMAIL_RE.sub(email, text)
    if "." in text:
        text = IPV4_RE.sub(ipv4, text)
    if "::" in text or text.count(":") >= 2:
        text = IPV6_CANDIDATE_RE.sub(ipv6, text)
    return text, counts[0], counts[1], counts[2]
