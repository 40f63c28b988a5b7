"""One host name normalization, shared by the URL blocklist and URL dedup.

Both compare hosts: the URL filter looks a page's host (and its parent domains) up in
the UT1 blocklist, URL dedup hashes the normalized URL. A host can be written many ways
that a browser resolves to the same name, and a blocklist that compares only one of them
is bypassed by the others (``http://bästcasino.eu/`` passed while its punycode form
``xn--bstcasino-v2a.eu`` was listed). :func:`normalize_host` maps the forms below to one
ASCII string, the one a browser would look up (WHATWG URL Standard, "host parsing"):

1. percent-escapes decoded (``b%C3%A4stcasino.eu``);
2. Unicode compatibility forms folded (NFKC: full-width ``ｅｘａｍｐｌｅ．ｃｏｍ``) and the
   ideographic full stops U+3002, U+FF0E, U+FF61 read as dots, as IDNA does;
3. lower-cased, surrounding white space and a trailing dot dropped;
4. each non-ASCII label IDNA-encoded to punycode (``xn--...``), label by label so that one
   label IDNA refuses does not leave the others unencoded;
5. an IPv4 address written as one integer, in hex or in octal (``3232235777``,
   ``0xC0A80101``, ``0300.0250.1.1``, ``192.168.257``) rewritten as four decimal bytes;
6. a leading ``www.`` label dropped: ``www.example.com`` and ``example.com`` serve the
   same site in the overwhelming majority of cases.

IPv6 literals (they hold ``:``) are written in their canonical compressed form
(``2001:db8::2``), and an IPv4-mapped one (``::ffff:159.153.253.16``) as its IPv4 address.

:func:`url_host` finds the host of a URL as a browser does for http(s), where
``urlsplit`` does not: a backslash is a slash (``http://bad.com\\@good.com/`` goes to
bad.com), and any number of slashes, or none, may follow the scheme (``http:bad.com``).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from encodings import idna
from typing import Optional
from urllib.parse import unquote

_IDEOGRAPHIC_DOTS = re.compile("[\u3002\uff0e\uff61]")


def _ipv4_number(part: str) -> Optional[int]:
    """One part of a WHATWG IPv4 address: decimal, ``0x`` hex or ``0``-prefixed octal."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if digits == "":
        return 0 if base == 16 else None
    try:
        return int(digits, base) if digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


def ipv4_of(host: str) -> Optional[str]:
    """``host`` as a dotted-decimal IPv4 address when it is one in any of the forms a
    browser accepts (1 to 4 parts, the last filling the remaining bytes), else None."""
    # Fast exit for names: an IPv4 address ends in a number ("example.com" does not).
    if not host or not host[-1].isalnum() or not host.rsplit(".", 1)[-1][:1].isdigit():
        return None
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(leading):
        value += n << (8 * (3 - i))
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _ipv6(host: str) -> str:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.IPv6Address(bare)
    except ValueError:
        return bare
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


# Schemes whose URLs the WHATWG URL Standard parses as "special": backslash = slash, and
# slashes after the scheme are optional and repeatable.
_SPECIAL_SCHEME = re.compile(r"^(?:https?|ftp|wss?):")
_ANY_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def split_url(url: str) -> tuple[str, str]:
    """``url`` lower-cased -> (host as written, the rest after the authority: path and
    query, no fragment), read the way a browser reads an http(s) URL; a URL with no
    scheme is read as one. The host is not normalized (see :func:`normalize_host`)."""
    rest = (url or "").strip().lower().replace("\\", "/").split("#", 1)[0]
    scheme = _SPECIAL_SCHEME.match(rest) or _ANY_SCHEME.match(rest)
    if scheme:
        rest = rest[scheme.end():]
    rest = rest.lstrip("/")
    end = re.search(r"[/?]", rest)
    authority, after = (rest[:end.start()], rest[end.start():]) if end else (rest, "")
    host = authority.rsplit("@", 1)[-1]  # drop user:password@
    if host.startswith("["):
        return host.split("]", 1)[0] + "]", after
    return host.split(":", 1)[0], after  # drop :port


def url_host(url: str) -> str:
    """The host of ``url`` as a browser reads it, not normalized."""
    return split_url(url)[0]


# The longest host name DNS allows (RFC 1035: 255 octets on the wire, 253 as text).
MAX_HOST_LENGTH = 253


def _ascii_label(label: str) -> str:
    if label.isascii():
        return label
    try:
        return idna.ToASCII(label).decode("ascii")
    except UnicodeError:  # empty, too long or refused by nameprep: keep it readable
        return label


def normalize_host(host: str) -> str:
    """The comparison form of a host name (see the module docstring for every rule)."""
    host = (host or "").strip()
    if "%" in host:
        host = unquote(host)
    if not host.isascii():
        host = _IDEOGRAPHIC_DOTS.sub(".", unicodedata.normalize("NFKC", host))
    host = host.strip().lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        return _ipv6(host)
    # A name longer than DNS allows (253) cannot resolve, so no IDNA form is needed and
    # none is computed (Python's punycode encoder is quadratic in a label's length).
    if not host.isascii() and len(host) <= MAX_HOST_LENGTH:
        host = ".".join(_ascii_label(label) for label in host.split("."))
    ipv4 = ipv4_of(host)
    if ipv4 is not None:
        return ipv4
    if host.startswith("www."):
        host = host[4:]
    return host
