"""corpus_report / corpus_overview on the edges a breaker found (issue 16): unit level, on
small stores written here (no pipeline run)."""

from __future__ import annotations

from corpus_assets.report_stages import overview_markdown, overview_rows, report_file
from corpus_assets.steps.report.summary import DumpTotals, funnel
from corpus_assets.storage import CorpusStore

D10 = "CC-MAIN-2024-10"


def _step(step, docs_in, docs_out, chars_in, chars_out):
    return {"step": step, "docs_in": docs_in, "docs_out": docs_out, "chars_in": chars_in, "chars_out": chars_out}


def _totals(deduped: bool = True) -> DumpTotals:
    t = DumpTotals()
    t.add("raw_documents", {"steps": [_step("raw_documents", 100, 90, 10**6, 9 * 10**5)]})
    t.add("rw_raw", {"steps": [_step("extraction", 90, 80, 9 * 10**5, 50000),
                               _step("language_id", 80, 40, 50000, 30000)]})
    if deduped:
        t.add("rw_deduped", {"steps": [_step("minhash_dedup", 40, 30, 30000, 20000)]})
    return t


def _summary(rows) -> dict:
    final = [r for r in rows if r.asset in ("raw_documents", "rw_raw", "rw_deduped")][-1]
    return {"dump": D10, "records_read": 100, "html_responses": 90, "funnel": [r.to_dict() for r in rows],
            "removals": [], "missing_partitions": {},
            "final": {"asset": final.asset, "step": final.step, "docs": final.docs, "share_docs": final.share_docs}}


def test_overview_text_chars_are_the_corpus_end_not_a_subset_row(tmp_path):
    rows = funnel(_totals(), [("domain_subsets", "in a domain (not unclassified)", 3, 1000),
                              ("zipfit_selection", "t: selected from this dump", 2, 500)])
    store = CorpusStore(str(tmp_path))
    store.write_json(report_file(D10, "report.json"), _summary(rows))
    row = overview_rows(store, [D10])[0]
    assert (row["final_asset"], row["final_docs"]) == ("rw_deduped", 30)
    assert row["text_chars"] == 20000 and row["share_text_chars"] == 0.4  # of the 50,000 extracted
    assert "| 20,000 | 40.0% |" in overview_markdown([row])


def test_overview_shows_an_asset_not_run_yet_as_dash(tmp_path):
    store = CorpusStore(str(tmp_path))
    store.write_json(report_file(D10, "report.json"), _summary(funnel(_totals(deduped=False))))
    row = overview_rows(store, [D10])[0]
    assert row["rw_filtered"] is None and row["rw_deduped"] is None and row["rw_raw"] == 40
    assert row["text_chars"] == 30000
    assert "| 40 | - | - | rw_raw |" in overview_markdown([row])


def _shard(store, dump, shard, docs, warc_files):
    folder = f"raw_documents/{dump}/{shard}"
    with store.publish_partition(folder):
        with store.table_writer(f"{folder}/documents.parquet") as w:
            w.write_many([{"doc_id": f"{shard}-{i}", "text": "x"} for i in range(docs)])
        with store.table_writer(f"{folder}/removed.parquet") as w:
            w.write_many([])
        store.write_json(f"{folder}/stats.json", {
            "dump": dump, "shard": shard, "asset": "raw_documents", "baseline_docs": docs, "seconds": 0.0,
            "extra": {"warc_files": warc_files},
            "steps": [{"step": "raw_documents", "docs_in": docs, "docs_out": docs, "chars_in": docs, "chars_out": docs,
                       "removed_by_reason": {}}]})


def _two_layouts(tmp_path) -> CorpusStore:
    """A dump run with 4 shards (1 WARC file each), then again with 2 (2 files each): the
    2-shard run rewrote 000/001 and the manifest; 002/003 of the 4-shard layout stayed."""
    store = CorpusStore(str(tmp_path / "corpus"))
    with store.publish_partition(f"crawl_manifest/{D10}"):
        with store.table_writer(f"crawl_manifest/{D10}/manifest.parquet") as w:
            w.write_many([{"warc_path": f"w{i}", "shard": "000" if i < 2 else "001", "bytes": 1} for i in range(4)])
    for shard, docs, files in (("000", 20, 2), ("001", 20, 2), ("002", 10, 1), ("003", 10, 1)):
        _shard(store, D10, shard, docs, files)
    return store


def test_stale_shard_folders_of_a_smaller_num_shards_are_left_out_and_named(tmp_path):
    from corpus_assets.report_stages import dump_totals, shard_layout

    store = _two_layouts(tmp_path)
    shards, ignored, problems = shard_layout(store, D10, ["000", "001"])
    assert shards == ["000", "001"] and ignored == {"raw_documents": ["002", "003"]}
    assert len(problems) == 1 and "not shards of num_shards 2" in problems[0]
    assert dump_totals(store, D10, shards)[0].records_read == 40
    paths, left_out = store.published_paths_and_ignored("raw_documents", "documents.parquet", num_shards=2)
    assert len(paths) == 2 and left_out == [f"raw_documents/{D10}/002", f"raw_documents/{D10}/003"]
    assert len(store.published_paths("raw_documents", "documents.parquet")) == 4  # no num_shards: every folder


def test_shards_of_another_layout_under_current_keys_are_not_summed(tmp_path):
    """The report run with num_shards 4 on that store: 002/003 are current keys, but the
    manifest (2-shard) assigns them no file while they read one: not counted twice."""
    from corpus_assets.report_stages import dump_totals, shard_layout

    store = _two_layouts(tmp_path)
    shards, ignored, problems = shard_layout(store, D10, ["000", "001", "002", "003"])
    assert shards == ["000", "001"] and ignored == {"raw_documents": ["002", "003"]}
    assert any("shard 002 read 1 WARC file(s)" in p for p in problems)
    assert dump_totals(store, D10, shards)[0].records_read == 40  # not 60


def test_drift_against_a_partly_processed_previous_dump_marks_its_gaps_missing():
    from corpus_assets.steps.report.render import drift_markdown
    from corpus_assets.steps.report.summary import drift, removals

    full, partial = _totals(deduped=True), _totals(deduped=False)  # the earlier dump's rw_deduped still running
    current = {**_summary(funnel(full)), "removals": removals(full), "languages": {}}
    previous = {**_summary(funnel(partial)), "dump": "CC-MAIN-2023-50", "removals": removals(partial),
                "languages": {}}
    out = drift(current, previous)
    deduped = [r for r in out["rows"] if "rw_deduped" in r["rate"]]
    assert deduped and all(r["previous"] is None and r["change_pp"] is None for r in deduped)
    assert all("previous dump: rw_deduped not materialized" in r["missing"] for r in deduped)
    assert not [r for r in out["largest"] if "rw_deduped" in r["rate"]]
    assert out["incomplete"] == ["previous dump: rw_deduped not materialized"]
    # shards missing from an asset the previous dump has: its rates are missing too
    out = drift(current, {**previous, "missing_partitions": {"rw_raw": ["001"]}})
    assert all(r["change_pp"] is None for r in out["rows"] if "rw_raw" in r["rate"])
    text = drift_markdown(out)
    assert "Not compared" in text and "| - |" in text
    # a complete previous dump: every rate compared, an unchanged one reads 0
    same = drift(current, {**current, "dump": "CC-MAIN-2023-50"})
    assert all(r["change_pp"] == 0 for r in same["rows"]) and "incomplete" not in same


def test_the_records_read_row_has_no_share_of_the_html_base():
    from corpus_assets.steps.report.render import funnel_markdown

    t = DumpTotals()
    t.add("raw_documents", {"steps": [_step("raw_documents", 100, 90, 10**6, 9 * 10**5)]})
    rows = [r.to_dict() for r in funnel(t)]
    assert rows[0]["step"] == "records read" and rows[0]["share_docs"] is None  # was 100/90 = 111%
    assert rows[1]["share_docs"] == 1.0 and "| records read | 100 | - |" in funnel_markdown(rows)


def test_largest_drift_line_names_the_rates_not_compared():
    from corpus_assets.assets.report import _largest_drift

    assert _largest_drift({"previous_dump": None, "largest": []}) == "no earlier dump"
    line = _largest_drift({"previous_dump": "A", "largest": [{"rate": "r", "change_pp": 1.5}],
                           "incomplete": ["previous dump: rw_deduped not materialized"]})
    assert line == "r +1.5 pp (not compared: previous dump: rw_deduped not materialized)"
