"""Hostile settings and inputs for targeted selection: each test reproduces a finding
(unusable targets, names Dagster refuses, misspelt keys inside list entries, colliding
lineage ids, held-out examples copied verbatim into a source, odd Unicode)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from corpus_assets.config import ConfigError, load_config
from corpus_assets.definitions import build_definitions
from corpus_assets.selection_stages import (
    EXAMPLES_SCHEMA, POOL, build_dsir_selection, build_selection_comparison, build_selection_pool,
    build_zipfit_selection, iter_jsonl, load_target_examples, table_path,
)
from corpus_assets.steps.selection import dsir, zipfit
from corpus_assets.steps.selection.decontamination import EXACT_REASON, REASON, ContaminationIndex
from corpus_assets.storage import CorpusStore


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def settings(tmp_path, selection_yaml: str):
    path = tmp_path / "pipeline.yaml"
    path.write_text("num_shards: 1\nselection:\n  data_dir: .\n  include_rw_deduped: false\n" + selection_yaml)
    return path


def problems(n, prefix="item"):
    return [{"text": f"{prefix} {i} " + " ".join(f"{prefix}{i}x{j}" for j in range(20))} for i in range(n)]


@pytest.fixture()
def data(tmp_path):
    write_jsonl(tmp_path / "target.jsonl", problems(10, "target"))
    write_jsonl(tmp_path / "source.jsonl", problems(30, "source"))
    (tmp_path / "empty.jsonl").write_text("")
    return tmp_path


# -- 1. a target with no usable example ---------------------------------------------------------

@pytest.mark.parametrize("target", [
    "{name: t, path: empty.jsonl}",
    "{name: t, path: target.jsonl, fields: [questoin]}",
])
def test_target_without_usable_examples_fails_the_pool_naming_it(data, target):
    cfg = load_config(settings(data, f"  targets:\n    - {target}\n  sources:\n"
                                     "    - {name: s, path: source.jsonl}\n"))
    with pytest.raises(ValueError, match=r"selection target t: .*usable") as err:
        build_selection_pool(CorpusStore(str(data / "corpus")), "t", cfg)
    if "questoin" in target:
        assert "no_text_in_fields" in str(err.value)


def test_target_with_one_example_has_none_held_out_and_fails(data):
    write_jsonl(data / "one.jsonl", problems(1))
    cfg = load_config(settings(data, "  targets:\n    - {name: t, path: one.jsonl}\n  sources: []\n"))
    with pytest.raises(ValueError, match="held out"):
        load_target_examples(cfg.selection, cfg.selection.target("t"))


def test_empty_target_fields_are_refused_at_load(data):
    with pytest.raises(ConfigError, match=r"selection\.targets\.0\.fields"):
        load_config(settings(data, "  targets:\n    - {name: t, path: target.jsonl, fields: []}\n"))


# -- 2. names Dagster refuses --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x y", "é", "a+b", "a:b", "..", "a,b", ""])
@pytest.mark.parametrize("kind", ["targets", "sources"])
def test_names_dagster_refuses_fail_at_load_naming_the_key(data, name, kind):
    entry = json.dumps({"name": name, "path": "target.jsonl"})
    with pytest.raises(ConfigError, match=rf"selection\.{kind}\.0\.name"):
        load_config(settings(data, f"  {kind}:\n    - {entry}\n"))


def test_valid_names_build_definitions(data):
    cfg = load_config(settings(data, "  targets:\n    - {name: Math_2, path: target.jsonl}\n"
                                     "  sources:\n    - {name: src_9, path: source.jsonl}\n"))
    build_definitions(config=cfg, corpus_root=str(data / "corpus"), crawl_root=str(data))


# -- 3. unknown keys inside list entries ---------------------------------------------------------

def test_unknown_key_inside_a_target_entry_is_an_error(data):
    with pytest.raises(ConfigError, match=r"selection\.targets\.0\.heldout_fracton: unknown setting"):
        load_config(settings(data, "  targets:\n    - {name: t, path: target.jsonl, heldout_fracton: 0.9}\n"))
    with pytest.raises(ConfigError, match=r"selection\.sources\.1\.bogus: unknown setting"):
        load_config(settings(data, "  sources:\n    - {name: a, path: source.jsonl}\n"
                                   "    - {name: b, path: source.jsonl, bogus: 1}\n"))


# -- 4. negative seed -----------------------------------------------------------------------------

def test_negative_seed_is_refused_at_load(data):
    with pytest.raises(ConfigError, match=r"selection\.seed"):
        load_config(settings(data, "  seed: -1\n"))


# -- 5. lineage ids ---------------------------------------------------------------------------------

def test_lineage_ids_are_unique_zero_is_an_id_and_fallbacks_cannot_collide(data):
    rows = [{"text": f"dup doc {i} " + "filler " * 5, "id": "dup"} for i in range(10)]
    rows += [{"text": "zero id document", "id": 0}, {"text": "literal line id", "id": "line:13"},
             {"text": "no id here"}]  # line 13: its fallback is line 13
    write_jsonl(data / "ids.jsonl", rows)
    cfg = load_config(settings(data, "  targets:\n    - {name: t, path: target.jsonl}\n"
                                     "  sources:\n    - {name: s, path: ids.jsonl, id_field: id}\n"))
    store = CorpusStore(str(data / "corpus"))
    report = build_selection_pool(store, "t", cfg)
    doc_ids = store.read_table(table_path(POOL, "t"), columns=["doc_id"]).column("doc_id").to_pylist()
    lineage = store.read_table(table_path(POOL, "t"), columns=["lineage_id"]).column("lineage_id").to_pylist()
    assert len(doc_ids) == len(set(doc_ids)) == 4
    assert "0" in lineage and "line:13" in lineage
    assert report["per_source"]["s"]["duplicate_lineage_id"] == 9
    assert report["per_source"]["s"]["available"] == 13


# -- 6. held-out examples verbatim in the pool -------------------------------------------------

def test_pool_document_equal_to_a_short_target_example_is_removed(data):
    big = "x" * 200_000  # one token: below min_tokens, never an n-gram
    write_jsonl(data / "t.jsonl", problems(5) + [{"text": big}, {"text": "Return  TRUE!"}])
    write_jsonl(data / "s.jsonl", problems(5, "src") + [{"text": big + "\n"}, {"text": "return true"}])
    cfg = load_config(settings(data, "  targets:\n    - {name: t, path: t.jsonl}\n"
                                     "  sources:\n    - {name: s, path: s.jsonl}\n"))
    store = CorpusStore(str(data / "corpus"))
    report = build_selection_pool(store, "t", cfg)
    assert report["removed_by_reason"] == {EXACT_REASON: 2}
    assert report["docs_out"] == 5


def test_exact_match_is_its_own_reason_and_ngram_reason_unchanged():
    index = ContaminationIndex(["return true", "a b c d e f g h i j k l m n"], n=13, min_tokens=8)
    assert index.match("Return TRUE") == (EXACT_REASON, "return true")
    assert index.match("zz a b c d e f g h i j k l m zz")[0] == REASON
    assert index.match("return true or false") is None


# -- lesser: Unicode and JSON oddities --------------------------------------------------------

def test_decontamination_sees_through_format_characters_and_compatibility_forms():
    words = "natalia sold clips to forty eight of her friends in april and then".split()
    index = ContaminationIndex([" ".join(words)], n=13, min_tokens=8)
    soft = " ".join(w[:2] + "\u00ad" + w[2:] for w in words)  # soft hyphens inside words
    zero_width = " ".join(w[:1] + "\u200b" + w[1:] for w in words)
    fullwidth = " ".join(words).replace("a", "\uff41")  # FULLWIDTH LATIN SMALL LETTER A
    for text in (soft, zero_width, fullwidth):
        assert index.first_match(text) is not None, text
    turkish = ContaminationIndex(["istanbul " + " ".join(words[:12])], n=13, min_tokens=8)
    assert turkish.first_match("İSTANBUL " + " ".join(words[:12]).upper()) is not None
    cities = "İSTANBUL İZMİR ANKARA BURSA ADANA KONYA GAZİANTEP ŞANLIURFA KOCAELİ MERSİN DİYARBAKIR HATAY MANİSA"
    lower = "istanbul izmir ankara bursa adana konya gaziantep şanlıurfa kocaeli mersin diyarbakır hatay manisa"
    assert ContaminationIndex([cities], n=13, min_tokens=8).first_match(lower) is not None


def test_lone_surrogates_do_not_crash_scoring():
    targets = zipfit.TargetSet(["abc \ud800 def"], level=6)
    assert np.isfinite(targets.alignment("\ud800"))
    assert dsir.hashed_ngrams("a \udfff b", 100, 2)
    ContaminationIndex(["\ud800 " * 20], n=13, min_tokens=8).first_match("\ud800 " * 20)


def test_non_string_fields_are_json_text_and_bom_keeps_the_first_line(data):
    (data / "bom.jsonl").write_bytes("\ufeff".encode() + b'{"text": true, "extra": {"a": 1}}\n{"text": "two"}\n')
    assert [r for _, r in iter_jsonl(data / "bom.jsonl")][0] == {"text": True, "extra": {"a": 1}}
    write_jsonl(data / "odd.jsonl", [{"q": True, "a": {"k": "é"}}, {"q": 3, "a": None}] + problems(3))
    cfg = load_config(settings(data, "  targets:\n    - {name: t, path: odd.jsonl, fields: [q, a]}\n"))
    examples, _ = load_target_examples(cfg.selection, cfg.selection.target("t"))
    texts = [e["text"] for e in examples]
    assert 'true\n{"k": "é"}' in texts and "3" in texts


def test_comparison_refuses_a_pool_without_held_out_examples(data):
    cfg = load_config(settings(data, "  targets:\n    - {name: t, path: target.jsonl}\n"
                                     "  sources:\n    - {name: s, path: source.jsonl}\n  workers: 1\n"))
    store = CorpusStore(str(data / "corpus"))
    build_selection_pool(store, "t", cfg)
    build_zipfit_selection(store, "t", cfg)
    build_dsir_selection(store, "t", cfg)
    # A pool written before the 2-example rule: every example on the select side.
    rel = table_path(POOL, "t", "target_examples.parquet")
    rows = [dict(r, split="select") for r in store.iter_rows(rel)]
    with store.table_writer(rel, EXAMPLES_SCHEMA) as writer:
        writer.write_many(rows)
    with pytest.raises(ValueError, match="no held-out example"):
        build_selection_comparison(store, "t", cfg)


def test_target_lines_that_are_not_utf8_or_repeat_a_key_are_counted_not_guessed(data):
    (data / "mixed.jsonl").write_bytes(b'{"text": "one"}\n{"text": "caf\xe9"}\n{"text": "a", "text": "b"}\n'
                                       b'{"text": "two"}\n')
    cfg = load_config(settings(data, "  targets:\n    - {name: t, path: mixed.jsonl}\n"))
    examples, facts = load_target_examples(cfg.selection, cfg.selection.target("t"))
    assert sorted(e["text"] for e in examples) == ["one", "two"]
    assert facts["unusable"] == {"not_utf8": 1, "duplicate_json_key": 1}
