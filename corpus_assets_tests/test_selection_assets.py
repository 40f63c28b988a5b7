"""The selection assets through Dagster on a small made-up pool: two targets (math, code),
three external sources, a fake rw_deduped partition and planted contamination."""

from __future__ import annotations

import json
import random

import dagster as dg
import pytest

from corpus_assets.config import ConfigError, load_config
from corpus_assets.definitions import build_definitions
from corpus_assets.selection_stages import COMPARISON, DSIR, POOL, ZIPFIT, table_path
from corpus_assets.storage import CorpusStore
from corpus_assets_tests.helpers import latest, materialize

# Enough names and numbers that made-up problems rarely share a 13-gram by chance.
NAMES = ["Ann", "Bob", "Carla", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kemal", "Lea",
         "Mona", "Nils", "Omar", "Pia", "Quinn", "Rosa", "Sven", "Tariq"]
ITEMS = ["apples", "pencils", "marbles", "stickers", "cookies", "books"]
PROSE = ("the river valley was settled by farmers in the early medieval period and later became "
         "a centre of the regional wool trade while the town council met in a hall near the old "
         "bridge where markets were held every week during the summer months").split()


def math_problem(rng: random.Random) -> dict:
    # A number every few words: two made-up problems share a 13-gram only by rare chance.
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, day, price = rng.randint(2, 999), rng.randint(2, 999), rng.randint(1, 30), rng.randint(1, 99)
    return {"question": f"{name} has {a} {item}. On day {day} {name} buys {b} more {item} for {price} dollars. "
                        f"How many {item} does {name} have after day {day}?",
            "answer": f"{name} has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} {item} after day {day}.\n#### {a + b}"}


IDENTIFIERS = ["values", "items", "total", "count", "index", "result", "buffer", "name", "node", "key",
               "config", "path", "row", "column", "size", "offset", "token", "parser", "cache", "limit"]


def code_snippet(rng: random.Random, i: int) -> str:
    # Random identifiers on every line: two made-up functions share no 13-gram by chance.
    ident = lambda: rng.choice(IDENTIFIERS)  # noqa: E731
    lines = [f"def {ident()}_{i}({ident()}, {ident()}=None):"]
    for _ in range(rng.randint(3, 6)):
        lines.append(rng.choice([
            f"    {ident()} = {ident()}.get({ident()}, {rng.randint(0, 99)})",
            f"    if {ident()} > {rng.randint(0, 99)}:\n        return {ident()}[{rng.randint(0, 9)}]",
            f"    for {ident()} in range(len({ident()})):\n        {ident()} += {ident()}",
        ]))
    lines.append(f"    return {ident()}")
    return "\n".join(lines) + "\n"


def prose(rng: random.Random) -> str:
    return " ".join(rng.choice(PROSE) for _ in range(rng.randint(40, 120))).capitalize() + "."


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def selection_run(tmp_path_factory):
    rng = random.Random(0)
    data = tmp_path_factory.mktemp("selection_data")
    math_targets = [math_problem(rng) for _ in range(40)]
    code_targets = [{"prompt": code_snippet(rng, 1000 + i), "canonical_solution": ""} for i in range(30)]
    write_jsonl(data / "math_target.jsonl", math_targets + ["not an object"])  # one unusable line
    write_jsonl(data / "code_target.jsonl", code_targets)
    math_source = [math_problem(rng) for _ in range(60)]
    # Planted: a source document quoting 14 words of a (possibly held-out) target example.
    planted = " ".join((math_targets[7]["question"] + " " + math_targets[7]["answer"]).split()[:14])
    math_source.append({"question": "Forum post: " + planted.upper(), "answer": "no idea"})
    write_jsonl(data / "math_source.jsonl", math_source + [{"question": "", "answer": ""}])
    write_jsonl(data / "code_source.jsonl", [{"text": code_snippet(rng, i), "path": f"pkg/m{i}.py"} for i in range(60)])
    write_jsonl(data / "wiki_source.jsonl", [{"text": prose(rng), "id": str(i)} for i in range(60)])
    config_file = data / "pipeline.yaml"
    config_file.write_text(f"""
num_shards: 1
selection:
  data_dir: .
  targets:
    - {{name: math, path: math_target.jsonl, fields: [question, answer], heldout_fraction: 0.25}}
    - {{name: code, path: code_target.jsonl, fields: [prompt, canonical_solution]}}
  sources:
    - {{name: mathsrc, path: math_source.jsonl, fields: [question, answer], domain: math}}
    - {{name: codesrc, path: code_source.jsonl, domain: code, id_field: path}}
    - {{name: wikisrc, path: wiki_source.jsonl, domain: wiki, id_field: id, max_docs: 50}}
    - {{name: absent, path: no_such_file.jsonl, domain: other}}
  max_docs_per_source: 100
  k: 30
  workers: 2
  histogram_bins: 5
""")
    config = load_config(config_file)
    corpus = tmp_path_factory.mktemp("selection_corpus")
    store = CorpusStore(str(corpus))
    # A finished rw_deduped partition (prose from the web) and an unfinished one (no stats).
    for shard, finished in (("000", True), ("001", False)):
        with store.table_writer(f"rw_deduped/CC-MAIN-2099-01/{shard}/documents.parquet") as w:
            w.write_many({"doc_id": f"web{shard}-{i}", "url": f"https://example.org/{i}", "text": prose(rng)}
                         for i in range(20))
        if finished:
            store.write_json(f"rw_deduped/CC-MAIN-2099-01/{shard}/stats.json", {})
    defs = build_definitions(config=config, corpus_root=str(corpus), crawl_root=str(data))
    with dg.instance_for_test() as instance:
        for target in ("math", "code"):
            materialize(defs, instance, [POOL, ZIPFIT, DSIR, COMPARISON], target, check_count=1)
        yield defs, instance, config, store, math_targets


def test_pool_counts_sources_and_decontamination(selection_run):
    defs, instance, config, store, math_targets = selection_run
    meta = latest(instance, POOL, "math")
    per_source = {r.data["source"]: r.data for r in meta["per_source"].records}
    assert per_source["wikisrc"]["sampled"] == 50 and per_source["wikisrc"]["available"] == 60
    assert per_source["absent"]["missing"] is True
    assert per_source["rw_deduped"]["kept"] == 20  # the unfinished partition is not read
    assert per_source["mathsrc"]["removed"] >= 1
    assert meta["decontamination_removed"] >= 1
    assert per_source["mathsrc"]["kept"] >= 50  # chance overlaps of the made-up problems stay rare
    assert meta["docs_in"] == meta["docs_out"] + meta["docs_removed"]
    assert meta["target_examples"] == 40 and meta["target_heldout"] == 10
    pool = store.read_table(table_path(POOL, "math")).to_pylist()
    assert not any(d["text"].startswith("Forum post") for d in pool)
    removed = store.read_table(table_path(POOL, "math", "removed.parquet")).to_pylist()
    assert any(r["reason"] == "shares_ngram_with_target" and r["source"] == "mathsrc" for r in removed)
    # Every pool document keeps its source and lineage id.
    assert all(d["source"] and d["lineage_id"] for d in pool)
    assert {d["lineage_id"] for d in pool if d["source"] == "codesrc"} >= {"pkg/m0.py"}


def test_selections_are_document_tables_with_scores_and_the_right_domain(selection_run):
    defs, instance, config, store, _ = selection_run
    for target, domain in (("math", "math"), ("code", "code")):
        for asset in (ZIPFIT, DSIR):
            rows = store.read_table(table_path(asset, target)).to_pylist()
            assert len(rows) == 30
            assert [r["rank"] for r in rows] == list(range(30))
            assert all(r["score"] is not None and r["text"] for r in rows)
            share = sum(r["domain"] == domain for r in rows) / len(rows)
            assert share >= 0.9, (target, asset, share)
            meta = latest(instance, asset, target)
            assert meta["selected_docs"] == 30
            assert sum(r.data["pool_docs"] for r in meta["score_histogram"].records) == latest(instance, POOL, target)["docs_out"]
        zip_rows = store.read_table(table_path(ZIPFIT, target)).to_pylist()
        assert all(a["score"] >= b["score"] for a, b in zip(zip_rows, zip_rows[1:]))


def test_comparison_reports_each_method_against_random(selection_run):
    defs, instance, config, store, _ = selection_run
    meta = latest(instance, COMPARISON, "math")
    methods = {r.data["method"]: r.data for r in meta["methods"].records}
    assert set(methods) == {ZIPFIT, DSIR, "random"}
    assert methods[ZIPFIT]["heldout_bits_per_byte_equal_bytes"] < methods["random"]["heldout_bits_per_byte_equal_bytes"]
    assert methods[ZIPFIT]["top_domain"] == "math"
    assert 0 <= meta["overlap_docs"] <= 30
    report = store.read_json(table_path(COMPARISON, "math", "stats.json"))
    assert report["methods"][ZIPFIT]["cpu_seconds"] > 0
    assert report["heldout_examples"] == 10


def test_dsir_selection_is_deterministic_under_the_seed(selection_run):
    defs, instance, config, store, _ = selection_run
    before = store.read_table(table_path(DSIR, "code"), columns=["doc_id"]).column("doc_id").to_pylist()
    materialize(defs, instance, [DSIR], "code")
    after = store.read_table(table_path(DSIR, "code"), columns=["doc_id"]).column("doc_id").to_pylist()
    assert before == after


def test_bad_selection_settings_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("selection:\n  targets:\n    - {name: x, path: x.jsonl, heldout_fraction: 1.5}\n")
    with pytest.raises((ConfigError, ValueError)):
        load_config(bad)
    bad.write_text("selection:\n  top_fraction: 0\n")
    with pytest.raises(ConfigError):
        load_config(bad)


def test_default_wiring_partitions_by_target_and_reads_rw_deduped():
    from corpus_assets.config import PipelineConfig

    defs = build_definitions(config=PipelineConfig(), corpus_root="/nonexistent", crawl_root="/nonexistent")
    graph = defs.resolve_asset_graph()
    for name in (POOL, ZIPFIT, DSIR, COMPARISON):
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def.get_partition_keys() == ["gsm8k", "humaneval"]
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey(POOL)).parent_keys}
    assert {"rw_deduped", "selection_source_gsm8k_train", "selection_source_python_code",
            "selection_source_gpteacher", "selection_source_enwiki", "selection_target_gsm8k",
            "selection_target_humaneval"} <= parents
    assert {k.to_user_string() for k in graph.get(dg.AssetKey(COMPARISON)).parent_keys} == {ZIPFIT, DSIR}
    assert defs.resolve_job_def("selection_job") is not None
