"""Issue 10, item 19: after rw_filtered a document has ONE text, the line-corrected one,
and later steps edit that one; signal columns stay in rw_quality_signals (doc_id joins
them). Checked on the shared sample, both dumps."""

from __future__ import annotations

from corpus_assets import dedup_stages
from corpus_assets.partitions import shard_keys
from corpus_assets.stages import LINEAGE_COLUMNS, documents_path
from corpus_assets.steps.dedup.exact_substring import Mode, apply_mode, token_spans_to_char_spans
from corpus_assets.steps.quality.signals import SIGNAL_COLUMNS

DUMPS = ("CC-MAIN-2024-10", "CC-MAIN-2024-18")


def _columns(store, asset, dump, shard) -> set:
    return set(store.read_table(documents_path(asset, dump, shard)).column_names)


def test_no_signal_column_after_rw_filtered_and_lineage_kept(sample_run):
    store, n = sample_run.store, sample_run.config.num_shards
    for dump in DUMPS:
        for shard in shard_keys(n):
            assert "rw_corrected_text" in _columns(store, "rw_quality_signals", dump, shard)
            for asset in ("rw_filtered", "rw_deduped"):
                columns = _columns(store, asset, dump, shard)
                assert not columns & set(SIGNAL_COLUMNS), (asset, sorted(columns & set(SIGNAL_COLUMNS)))
                assert set(LINEAGE_COLUMNS) <= columns, (asset, set(LINEAGE_COLUMNS) - columns)
                assert "text" in columns and not {c for c in columns if c.endswith("_text")}


def test_deduped_text_is_the_line_corrected_text_minus_exact_cuts(sample_run):
    store, config = sample_run.store, sample_run.config
    assert config.dedup.exact_substring and config.dedup.exact_mode == "cut"
    corrected_docs = cut_docs = 0
    for dump in DUMPS:
        spans = {r["doc_id"]: list(zip(r["span_starts"], r["span_stops"]))
                 for r in store.read_table(f"{dedup_stages.SPANS}/{dump}/spans.parquet").to_pylist()}
        for shard in shard_keys(config.num_shards):
            signals = {r["doc_id"]: r for r in store.iter_rows(
                documents_path("rw_quality_signals", dump, shard),
                columns=["doc_id", "text", "rw_corrected_text", "rw_text_changed"])}
            for doc in store.iter_rows(documents_path("rw_deduped", dump, shard), columns=["doc_id", "text"]):
                s = signals[doc["doc_id"]]
                expected = s["rw_corrected_text"] if s["rw_text_changed"] else s["text"]
                corrected_docs += s["rw_text_changed"]
                if doc["doc_id"] in spans:
                    cut_docs += 1
                    chars = token_spans_to_char_spans(expected, spans[doc["doc_id"]])
                    expected = apply_mode(expected, chars, Mode.CUT).text
                assert doc["text"] == expected, doc["doc_id"]
    assert corrected_docs > 50 and cut_docs > 0, (corrected_docs, cut_docs)
