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


# The LLM annotator's "no domain" answer and its invalid marker, and the subset of the
# unclaimed: a domain with one of these names (in any case) would be confused with them.
RESERVED_NAMES = {"none", "__invalid__", UNCLASSIFIED}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys; a taxonomy must say each domain once."""


def _construct_unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        typed = (type(key).__name__, repr(key))  # True == 1 in Python: not a duplicate here
        if typed in seen:
            raise TaxonomyError(f"domain {key!r} is listed more than once (line {key_node.start_mark.line + 1})")
        seen.add(typed)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _string_list(path: Path, name: str, spec: dict, key: str) -> tuple[str, ...]:
    value = spec.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):  # 'a, b' would be read as its characters
        raise TaxonomyError(f"{path}: domain {name!r}: `{key}` must be a list, not {type(value).__name__}")
    return tuple(str(v) for v in value)


def load_taxonomy(path: Optional[str] = None) -> Taxonomy:
    path = Path(path) if path else DEFAULT_TAXONOMY
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise TaxonomyError(f"taxonomy file not readable: {path}: {exc}") from exc
    try:
        raw = yaml.load(raw_bytes, Loader=_UniqueKeyLoader) or {}
    except TaxonomyError as exc:
        raise TaxonomyError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from None
    entries = raw.get("domains") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise TaxonomyError(f"{path}: expected a non-empty `domains:` mapping")
    domains = []
    lowered: dict[str, str] = {}
    for name, spec in entries.items():
        # Names are Dagster partition keys and LLM answers: letters, digits and "_" only
        # (no "|", ",", "[", "]"), a string in the file (12 or true would be retyped).
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise TaxonomyError(f"{path}: invalid domain name {str(name)!r} (letters, digits and _ only)")
        if name.lower() in RESERVED_NAMES:
            raise TaxonomyError(f"{path}: domain {name!r}: the name is reserved ({sorted(RESERVED_NAMES)}, any case)")
        if name.lower() in lowered:
            # the annotator matches answers case-insensitively: two such names are one
            raise TaxonomyError(f"{path}: domain {name!r} differs only in case from {lowered[name.lower()]!r}")
        lowered[name.lower()] = name
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise TaxonomyError(f"{path}: domain {name!r}: expected a mapping with a description, "
                                f"not {type(spec).__name__}")
        if not spec.get("description"):
            raise TaxonomyError(f"{path}: domain {name!r} has no description")
        domains.append(Domain(name, str(spec["description"]),
                              tuple(h.lower() for h in _string_list(path, name, spec, "hosts")),
                              _string_list(path, name, spec, "keywords")))
    return Taxonomy(str(raw.get("name") or path.stem), tuple(domains), hashlib.sha256(raw_bytes).hexdigest()[:12])
