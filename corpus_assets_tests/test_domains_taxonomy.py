"""The taxonomy loader refuses what would silently go wrong later: duplicate names (YAML
keeps the last), reserved names, names differing only in case, strings where lists are
expected, specs that are not mappings, names that are no valid partition key. Every
refusal is a TaxonomyError naming the file and the domain."""

from __future__ import annotations

import pytest

from corpus_assets.steps.domains.annotator import LlmAnnotator
from corpus_assets.steps.domains.taxonomy import TaxonomyError, load_taxonomy


def write(tmp_path, body: str):
    path = tmp_path / "tax.yaml"
    path.write_text("domains:\n" + body)
    return str(path)


@pytest.mark.parametrize("body, domain, why", [
    ("  math: {description: a}\n  math: {description: b}\n", "math", "more than once"),
    ("  none: {description: a}\n", "none", "reserved"),
    ("  None_: {description: a}\n  NONE: {description: b}\n", "NONE", "reserved"),
    ("  __invalid__: {description: a}\n", "__invalid__", "reserved"),
    ("  Unclassified: {description: a}\n", "Unclassified", "reserved"),
    ("  Math: {description: a}\n  math: {description: b}\n", "math", "only in case"),
    ("  math: {description: a, keywords: 'algebra, geometry'}\n", "math", "keywords"),
    ("  math: {description: a, hosts: mathworld.com}\n", "math", "hosts"),
    ("  math: Mathematics\n", "math", "mapping"),
    ("  'a|b': {description: x}\n", "a|b", "name"),
    ("  'a,b': {description: x}\n", "a,b", "name"),
    ("  '[a]': {description: x}\n", "[a]", "name"),
    ("  12: {description: x}\n", "12", "name"),
    ("  true: {description: t}\n  1: {description: one}\n", "True", "name"),  # True == 1: no "duplicate"
])
def test_bad_taxonomies_are_refused_naming_file_and_domain(tmp_path, body, domain, why):
    path = write(tmp_path, body)
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(path)
    message = str(err.value)
    assert path in message and repr(domain) in message and why in message


def test_a_valid_mixed_case_name_is_matched_case_insensitively(tmp_path):
    tax = load_taxonomy(write(tmp_path, "  Math: {description: numbers, keywords: [algebra]}\n"))
    ann = LlmAnnotator("http://127.0.0.1:9/v1", "m", tax.names)
    assert ann._allowed["math"] == "Math"
