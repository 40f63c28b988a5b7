"""The domain taxonomy: a data file (FineFineWeb's 67 domains by default), loaded once.

Each domain has a one-line description and seed hints (example hosts, keywords). The
file's content hash goes into the code version of every domain asset, so swapping or
editing the taxonomy marks them stale.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import yaml

DEFAULT_TAXONOMY = Path(__file__).resolve().parents[2] / "defaults" / "taxonomy" / "finefineweb.yaml"
# The subset of documents that no domain claimed: documents in = sum over subsets.
UNCLASSIFIED = "unclassified"


class TaxonomyError(ValueError):
    pass


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    hosts: tuple[str, ...]
    keywords: tuple[str, ...]

    def prompt_text(self) -> str:
        """What the zero-shot labeller embeds for this domain."""
        words = ", ".join(self.keywords)
        return f"{self.name.replace('_', ' ')}: {self.description}" + (f" Keywords: {words}." if words else "")


@dataclass(frozen=True)
class Taxonomy:
    name: str
    domains: tuple[Domain, ...]
    content_hash: str

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.domains]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def host_rules(self) -> dict[str, str]:
        """host -> domain, from every domain's example hosts."""
        rules: dict[str, str] = {}
        for d in self.domains:
            for h in d.hosts:
                rules.setdefault(h.lower().lstrip("."), d.name)
        return rules


def host_of(url: str) -> str:
    try:
        host = urlsplit(url or "").hostname or ""
    except ValueError:
        return ""
    return host.lower().rstrip(".")


def root_of(url: str) -> str:
    """The root URL FineFineWeb's annotators label: scheme-less host without ``www.``."""
    host = host_of(url)
    return host[4:] if host.startswith("www.") else host


def match_host(host: str, rules: dict[str, str]) -> Optional[str]:
    """The domain of ``host`` or of its nearest listed parent (``a.b.nasa.gov`` -> nasa.gov)."""
    parts = host.split(".")
    for i in range(len(parts) - 1):
        hit = rules.get(".".join(parts[i:]))
        if hit:
            return hit
    return None


def load_taxonomy(path: Optional[str] = None) -> Taxonomy:
    path = Path(path) if path else DEFAULT_TAXONOMY
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise TaxonomyError(f"taxonomy file not readable: {path}: {exc}") from exc
    raw = yaml.safe_load(raw_bytes) or {}
    entries = raw.get("domains")
    if not isinstance(entries, dict) or not entries:
        raise TaxonomyError(f"{path}: expected a non-empty `domains:` mapping")
    domains = []
    for name, spec in entries.items():
        spec = spec or {}
        if name == UNCLASSIFIED or not str(name).replace("_", "").isalnum():
            raise TaxonomyError(f"{path}: invalid domain name {name!r}")
        if not spec.get("description"):
            raise TaxonomyError(f"{path}: domain {name!r} has no description")
        domains.append(Domain(str(name), str(spec["description"]),
                              tuple(str(h).lower() for h in spec.get("hosts") or ()),
                              tuple(str(k) for k in spec.get("keywords") or ())))
    return Taxonomy(str(raw.get("name") or path.stem), tuple(domains), hashlib.sha256(raw_bytes).hexdigest()[:12])
