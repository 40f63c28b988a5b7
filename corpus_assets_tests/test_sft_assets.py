"""Fine-tuning pool selection through Dagster on a slice of the real pool (every 70th
GPTeacher record plus planted bad lines and a planted duplicate): samples -> statistics ->
selection, with the real lid.176 model, the shared n-gram LM (its cache; trained on first
use), cl100k_base and all-MiniLM-L6-v2. Skips, with the reason, without ../shared/data."""

from __future__ import annotations

import dataclasses
import gzip
import json

import pytest

BUDGET = 4000


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    import dagster as dg

    from corpus_assets.assets.sft import BUDGET_CHECK, CONSERVATION_CHECK, NONEMPTY_CHECK, build_sft_assets
    from corpus_assets.config import load_config
    from corpus_assets.resources import CorpusStoreResource, TokenizerResource
    from corpus_assets.steps.sft.config import SftConfig, SftDataset

    tmp = tmp_path_factory.mktemp("sft")
    with gzip.open(shared_data / "instruct" / "gpteacher.jsonl.gz", "rt", encoding="utf-8") as fh:
        lines = [line for i, line in enumerate(fh) if i % 70 == 0]
    planted = lines[:3] + ["{broken json\n", json.dumps({"instruction": "no output"}) + "\n",
                           json.dumps({"instruction": 5, "output": "x"}) + "\n", lines[0]] + lines[3:]
    (tmp / "slice.jsonl").write_text("".join(planted), encoding="utf-8")
    recipes = tmp / "recipes"
    recipes.mkdir()
    (recipes / "tiny.yaml").write_text(json.dumps({"name": "tiny", "datasets": ["slice"], "token_budget": BUDGET,
                                                   "seed": 3, "diversity": {"clusters": 8}}))
    config = load_config()
    config = dataclasses.replace(config, sft=SftConfig(datasets=(SftDataset("slice", str(tmp / "slice.jsonl")),),
                                                       recipes_dir=str(recipes)))
    assets = build_sft_assets(config)
    resources = {"corpus_store": CorpusStoreResource(root=str(tmp / "store")), "tokenizer": TokenizerResource()}
    first = dg.materialize(assets, selection=["sft_samples", "sft_statistics"], partition_key="slice",
                           resources=resources)
    second = dg.materialize(assets, selection=["sft_selection"], partition_key="tiny", resources=resources)
    store = resources["corpus_store"].get_store()
    from corpus_assets.sft_stages import selection_path

    def output() -> bytes:
        with open(store.uri(selection_path("tiny", "selection.jsonl")), "rb") as fh:
            return fh.read()

    before = output()
    again = dg.materialize(assets, selection=["sft_selection"], partition_key="tiny", resources=resources)
    return {"first": first, "second": second, "again": again, "outputs": (before, output()), "store": store,
            "lines": planted, "checks": (BUDGET_CHECK, CONSERVATION_CHECK, NONEMPTY_CHECK)}


def test_samples_count_bad_lines(run):
    assert run["first"].success
    meta = run["first"].asset_materializations_for_node("sft_samples")[0].metadata
    assert meta["docs_in"].value == len(run["lines"])
    assert meta["removed_by_reason"].value == {"malformed_json": 1, "missing_field": 1, "non_string_field": 1}
    assert meta["docs_out"].value == len(run["lines"]) - 3
    stats = run["first"].asset_materializations_for_node("sft_statistics")[0].metadata
    assert stats["samples"].value == meta["docs_out"].value and stats["tokens"].value > BUDGET
    assert "cl100k_base" in stats["tokenizer"].value and stats["lm"].value["language"] == "en"


def test_selection_respects_budget_and_writes_the_pool_format(run):
    from corpus_assets.sft_stages import selection_path

    assert run["second"].success
    meta = run["second"].asset_materializations_for_node("sft_selection")[0].metadata
    manifest = run["store"].read_json(selection_path("tiny"))
    assert 0 < manifest["tokens_used"] <= BUDGET == meta["token_budget"].value
    # the budget forced a choice: fewer samples than the quality gate passed
    assert manifest["funnel"][-1]["samples_in"] > manifest["funnel"][-1]["samples_out"]
    # the planted repeat (line 7) of the first record (line 1) is never selected twice
    selected = {r["sample_id"] for r in run["store"].iter_rows(selection_path("tiny", "selected.parquet"))}
    assert not {"slice:1", "slice:7"} <= selected
    assert set(manifest["removed_by_step"]["dedup"]) <= {"exact_duplicate", "near_duplicate"}
    checks = {c.check_name: c.passed for c in run["second"].get_asset_check_evaluations()}
    assert checks == {name: True for name in run["checks"]}
    with open(run["store"].uri(selection_path("tiny", "selection.jsonl")), encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == manifest["samples"] == meta["samples"].value
    assert all(set(r) == {"instruction", "input", "output", "source", "dataset"} for r in rows)
    assert {r["step"] for r in (x.data for x in meta["funnel"].value.records)} == {
        "read", "filters", "dedup", "quality_gate", "selection"}
    div = manifest["diversity"]
    assert abs(div["random"]["tokens"] - manifest["tokens_used"]) <= 2048
    assert 0.0 <= div["selection"]["cluster_entropy"] <= 1.0
    assert manifest["seed"] == 3 and manifest["thresholds"]["filters"]["min_lang_score"] == 0.7
    assert sum(e["samples"] for e in manifest["composition"]["selection"].values()) == manifest["samples"]
    baselines = list(run["store"].iter_rows(selection_path("tiny", "baselines.parquet")))
    by_name = {}
    for r in baselines:
        by_name.setdefault(r["selection"], []).append(r)
    assert set(by_name) == {"random", "quality_only", "cluster_caps"}
    assert sum(r["token_count"] for r in by_name["random"]) == div["random"]["tokens"]


def test_same_recipe_and_seed_same_selection_bytes(run):
    assert run["again"].success
    before, after = run["outputs"]
    assert before and before == after
