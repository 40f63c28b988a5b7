"""CCNet's branch through Dagster on the project's own small crawl: text -> line
duplicates per group of shards -> dedup + language ID -> perplexity -> cut-offs ->
buckets, with conservation checks, every removal counted, and a cut-off change that
re-runs decisions only."""

import gzip
import json

import dagster as dg
import pytest

from corpus_assets import ccnet_stages
from corpus_assets.assets.ccnet import CCNET_SHARD_ASSETS
from corpus_assets.partitions import DUMP_DIM, shard_keys
from corpus_assets.stages import documents_path, load_report, removed_path
from corpus_assets_tests.helpers import materialize

DUMP = "CC-MAIN-2024-10"
REFERENCE_TEXT = [
    "A survey of the river found that the water is cleaner than at any time since measurements began.",
    "The town rebuilt its treatment plant after the old mill closed, and fish have returned.",
    "Bread needs flour, water and salt, and the starter is a culture of wild yeast.",
    "The team took samples every month at twelve places along the bank.",
] * 30


@pytest.fixture(scope="module")
def ccnet_run(tmp_path_factory, fixture_crawl):
    from corpus_assets.config import load_config
    from corpus_assets.definitions import build_definitions
    from corpus_assets.storage import CorpusStore

    root = tmp_path_factory.mktemp("ccnet")
    reference = root / "reference.jsonl.gz"
    with gzip.open(reference, "wt") as fh:
        for i in range(0, len(REFERENCE_TEXT), 4):
            fh.write(json.dumps({"text": "\n".join(REFERENCE_TEXT[i:i + 4])}) + "\n")
    settings = root / "settings.yaml"
    settings.write_text(f"""
num_shards: 2
lm:
  order: 3
  vocab_size: 200
  cache_dir: {root / 'lm_cache'}
  references: [{{language: en, path: {reference}}}]
ccnet:
  line_dedup_group_shards: 2
  min_chars: 100
  head_percentile: 30
  tail_percentile: 60
""")
    config = load_config(settings)
    defs = build_definitions(config=config, corpus_root=str(root / "corpus"), crawl_root=str(fixture_crawl))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, [DUMP])
        materialize(defs, instance, ["crawl_manifest"], DUMP)
        shards = shard_keys(config.num_shards)
        for shard in shards:
            materialize(defs, instance, ["raw_documents", ccnet_stages.TEXT], f"{DUMP}|{shard}")
        materialize(defs, instance, [ccnet_stages.DUPLICATES], DUMP)
        for shard in shards:
            materialize(defs, instance, [ccnet_stages.DEDUPED, ccnet_stages.PERPLEXITY], f"{DUMP}|{shard}",
                        check_count=2)
        materialize(defs, instance, [ccnet_stages.CUTOFFS], DUMP)
        for shard in shards:
            materialize(defs, instance, [ccnet_stages.BUCKETS], f"{DUMP}|{shard}", check_count=1)
        yield defs, instance, config, CorpusStore(str(root / "corpus")), shards


def _rows(store, asset, shard, columns=None):
    return store.read_table(documents_path(asset, DUMP, shard), columns=columns).to_pylist()


def test_the_tracking_url_copy_and_its_original_both_lose_their_lines(ccnet_run):
    _, _, _, store, shards = ccnet_run
    removed = [r for s in shards for r in store.read_table(removed_path(ccnet_stages.DEDUPED, DUMP, s)).to_pylist()]
    text_urls = {r["url"] for s in shards for r in _rows(store, ccnet_stages.TEXT, s, ["url"])}
    copies = [u for u in text_urls if "utm_source" in u]
    assert copies, "the fixture's exact copy should reach ccnet_text"
    original = copies[0].split("?")[0]
    gone = {r["url"]: r["reason"] for r in removed}
    # CCNet removes every copy of a duplicated line, the first included: both pages go
    assert gone.get(copies[0]) == "all_lines_duplicated"
    assert gone.get(original) == "all_lines_duplicated"


def test_every_document_is_kept_or_removed_with_a_reason(ccnet_run):
    _, _, _, store, shards = ccnet_run
    for shard in shards:
        for asset, upstream in ((ccnet_stages.DEDUPED, ccnet_stages.TEXT),
                                (ccnet_stages.PERPLEXITY, ccnet_stages.DEDUPED),
                                (ccnet_stages.BUCKETS, ccnet_stages.PERPLEXITY)):
            report = load_report(store, asset, DUMP, shard)
            assert report.docs_in == store.row_count(documents_path(upstream, DUMP, shard))
            assert report.docs_in == report.docs_out + report.docs_removed
        # language ID comes after dedup, at CCNet's 0.5 and any language
        steps = [s["step"] for s in load_report(store, ccnet_stages.DEDUPED, DUMP, shard).steps]
        assert steps == ["ccnet_line_dedup", "language_id"]


def test_perplexity_and_buckets(ccnet_run):
    _, _, config, store, shards = ccnet_run
    rows = [r for s in shards for r in _rows(store, ccnet_stages.BUCKETS, s,
                                                ["language", "ccnet_perplexity", "ccnet_bucket"])]
    assert rows
    for r in rows:
        if r["language"] == "en":
            assert r["ccnet_perplexity"] > 0 and r["ccnet_bucket"] in ("head", "middle", "tail")
        else:  # no German model: unscored, bucket "all" (cc_net's name)
            assert r["ccnet_perplexity"] == -1.0 and r["ccnet_bucket"] == "all"
    cutoffs = store.read_json(ccnet_stages.cutoffs_path(DUMP))["cutoffs"]
    assert set(cutoffs) == {"en"} and cutoffs["en"][0] <= cutoffs["en"][1]
    sizes = ccnet_stages.bucket_sizes(store, DUMP, shards)
    assert sum(sizes.values()) == len(rows)


def test_picking_a_subset_reruns_decisions_only(ccnet_run, monkeypatch):
    _, _, config, store, shards = ccnet_run
    import dataclasses

    picked = dataclasses.replace(config, ccnet=dataclasses.replace(config.ccnet, keep_buckets=("head",)))
    # no perplexity may be computed for a decision change
    monkeypatch.setattr(ccnet_stages, "load_or_train", lambda *a, **k: pytest.fail("LM loaded"))
    for shard in shards:
        report = ccnet_stages.build_ccnet_buckets(store, DUMP, shard, picked)
        assert set(_r["ccnet_bucket"] for _r in _rows(store, ccnet_stages.BUCKETS, shard, ["ccnet_bucket"])) <= {"head"}
        assert sum(report.extra["bucket_docs"].values()) == report.docs_in
    # a percentile change without re-running the cut-offs is refused, not silently mixed
    moved = dataclasses.replace(config, ccnet=dataclasses.replace(config.ccnet, head_percentile=20))
    with pytest.raises(RuntimeError, match="re-materialize"):
        ccnet_stages.build_ccnet_buckets(store, DUMP, shards[0], moved)


def test_group_size_change_is_refused_until_duplicates_are_rebuilt(ccnet_run):
    _, _, config, store, shards = ccnet_run
    import dataclasses

    other = dataclasses.replace(config, ccnet=dataclasses.replace(config.ccnet, line_dedup_group_shards=1))
    with pytest.raises(RuntimeError, match="groups of 2"):
        ccnet_stages.build_ccnet_deduped(store, DUMP, shards[0], other)
    assert ccnet_stages.shard_groups(["002", "000", "001"], 2) == [["000", "001"], ["002"]]
    assert CCNET_SHARD_ASSETS[0] == ccnet_stages.TEXT


def test_a_broken_reference_fails_the_partition_once_before_any_document(ccnet_run, tmp_path):
    _, _, config, store, shards = ccnet_run
    import dataclasses

    from corpus_assets.steps.lm.config import LmReference

    broken = dataclasses.replace(config, lm=dataclasses.replace(
        config.lm, references=(LmReference("en", str(tmp_path / "missing.jsonl.gz")),)))
    before = store.read_table(documents_path(ccnet_stages.PERPLEXITY, DUMP, shards[0])).num_rows
    with pytest.raises(FileNotFoundError):
        ccnet_stages.build_ccnet_perplexity(store, DUMP, shards[0], broken)
    # the published partition is untouched
    assert store.read_table(documents_path(ccnet_stages.PERPLEXITY, DUMP, shards[0])).num_rows == before


def test_an_lm_change_refuses_stale_perplexities_and_cutoffs_until_rebuilt(ccnet_run):
    # last in this file: it re-materializes the perplexities and restores them at its end
    _, _, config, store, shards = ccnet_run
    import dataclasses

    # a model trained on less of the reference (any lm setting, the reference's bytes or
    # the query engine changes the identity the same way)
    other_lm = dataclasses.replace(config, lm=dataclasses.replace(config.lm, max_reference_chars=3000))
    assert ccnet_stages.perplexity_identity(other_lm) != ccnet_stages.perplexity_identity(config)
    # the buckets of stale cut-offs (or perplexities) are refused, not silently mixed
    with pytest.raises(RuntimeError, match="another language model .* re-materialize"):
        ccnet_stages.build_ccnet_buckets(store, DUMP, shards[0], other_lm)
    ccnet_stages.build_ccnet_perplexity(store, DUMP, shards[0], other_lm)
    with pytest.raises(RuntimeError, match=f"ccnet_perplexity {DUMP}\\|{shards[1]} .* re-materialize"):
        ccnet_stages.build_ccnet_cutoffs(store, DUMP, shards, other_lm)
    ccnet_stages.build_ccnet_perplexity(store, DUMP, shards[1], other_lm)
    with pytest.raises(RuntimeError, match=f"ccnet_cutoffs {DUMP} .* re-materialize"):
        ccnet_stages.build_ccnet_buckets(store, DUMP, shards[0], other_lm)
    ccnet_stages.build_ccnet_cutoffs(store, DUMP, shards, other_lm)
    report = ccnet_stages.build_ccnet_buckets(store, DUMP, shards[0], other_lm)
    assert sum(report.extra["bucket_docs"].values()) == report.docs_in
    for shard in shards:
        ccnet_stages.build_ccnet_perplexity(store, DUMP, shard, config)
    ccnet_stages.build_ccnet_cutoffs(store, DUMP, shards, config)
