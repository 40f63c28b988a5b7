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
