"""The corpus report: per-dump funnel, removals, distributions and drift, read back from
the materializations' metadata (the numbers the UI shows)."""

from __future__ import annotations

import base64
import re
from collections import Counter

import dagster as dg
import pytest

from corpus_assets.partitions import shard_keys, shard_partition_key
from corpus_assets.steps.report.render import funnel_plot, markdown_table
from corpus_assets.steps.report.summary import DOCUMENT_ASSETS, DumpTotals, drift, funnel, histogram, pct, removals
from corpus_assets_tests.helpers import QUIET, latest

D10, D18 = "CC-MAIN-2024-10", "CC-MAIN-2024-18"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reports(sample_run):
    """corpus_report of both sample dumps and the overview, materialized once."""
    defs, instance = sample_run.defs, sample_run.instance
    for dump in (D10, D18):
        result = dg.materialize(defs.assets, selection=["corpus_report"], partition_key=dump, instance=instance,
                                resources=defs.resources, run_config=QUIET)
        assert result.success
    assert dg.materialize(defs.assets, selection=["corpus_overview"], instance=instance, resources=defs.resources,
                          run_config=QUIET).success
    return {dump: latest(instance, "corpus_report", dump) for dump in (D10, D18)}


def _embedded_pngs(markdown: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", markdown)]


def _shard_sums(instance, dump: str, num_shards: int) -> dict:
    """Per (asset, step), documents out summed over the dump's shard partitions, from each
    partition's own `funnel` metadata."""
    sums: Counter = Counter()
    for asset in DOCUMENT_ASSETS:
        for shard in shard_keys(num_shards):
            for record in latest(instance, asset, shard_partition_key(dump, shard))["funnel"].records:
                sums[(asset, record.data["step"])] += record.data["docs_out"]
    return sums


def test_funnel_equals_the_sum_over_shard_partitions(sample_run, reports):
    for dump, meta in reports.items():
        rows = [r.data for r in meta["funnel_table"].records]
        sums = _shard_sums(sample_run.instance, dump, sample_run.config.num_shards)
        by_step = {(r["asset"], r["step"]): r["docs"] for r in rows if r["step"] != "records read"}
        assert by_step == dict(sums)
        html = sum(latest(sample_run.instance, "raw_documents", shard_partition_key(dump, s))["docs_out"]
                   for s in shard_keys(sample_run.config.num_shards))
        assert meta["html_responses"] == html
        deduped = next(r for r in reversed(rows) if r["asset"] == "rw_deduped")
        assert meta["final_docs"] == deduped["docs"] > 0
        assert deduped["docs_pct"] == meta["final_share"] == pct(deduped["docs"] / html)  # "12.7%"
        assert re.fullmatch(r"\d+\.\d%", deduped["docs_pct"])
        # characters are labelled: HTML until extraction, text after it
        kinds = {r["step"]: r["chars_are"] for r in rows}
        assert kinds["url_filter"] == "HTML chars" and kinds["extraction"] == "text chars" == kinds["language_id"]
        assert rows[0]["step"] == "records read" and rows[0]["docs_pct"] == "-"
        assert meta["incomplete_partitions"] == {}


def test_report_carries_plots_viewable_in_the_ui(sample_run, reports):
    for dump, meta in reports.items():
        pngs = _embedded_pngs(meta["funnel"])
        assert pngs and pngs[0].startswith(PNG_MAGIC), "the funnel markdown embeds its plot"
        assert "% of HTML 200 responses" in meta["funnel"] and "%" in meta["funnel"]
        assert _embedded_pngs(meta["distributions"])[0].startswith(PNG_MAGIC)
        with open(meta["funnel_plot"], "rb") as fh:  # the stored file the path metadata names
            assert fh.read() == pngs[0]


def test_removals_biggest_first_and_account_for_every_document(sample_run, reports):
    for dump, meta in reports.items():
        md = meta["removals"]
        counts = [int(c.replace(",", "")) for c in re.findall(r"^\| [^|]+ \| [^|]+ \| [^|]+ \| ([\d,]+) \|", md, re.M)]
        assert counts and counts == sorted(counts, reverse=True)
        summary = sample_run.store.read_json(f"corpus_report/{dump}/report.json")
        assert sum(r["docs"] for r in summary["removals"]) == meta["records_read"] - meta["final_docs"]
        dist = summary["distributions"]
        assert "en" in dist["languages"] and sum(dist["language_score"]["counts"]) > 0
        assert dist["doc_length"]["n"] == meta["final_docs"]
        assert set(dist["quality_signals"]) >= {"gopher_word_count", "gopher_dup_line_frac"}


def test_drift_against_the_previous_dump(reports):
    assert "No earlier dump" in reports[D10]["drift"]
    md = reports[D18]["drift"]
    assert D10 in md and "percentage points" in md
    assert reports[D18]["largest_drift"] != "no earlier dump"


def test_overview_has_one_row_per_dump(sample_run, reports):
    records = sample_run.instance.fetch_materializations(dg.AssetKey("corpus_overview"), limit=1).records
    meta = records[0].event_log_entry.asset_materialization.metadata
    assert meta["dumps"].value == 2 and D10 in meta["overview"].value and D18 in meta["overview"].value
    rows = sample_run.store.read_json("corpus_overview/overview.json")["dumps"]
    assert [r["dump"] for r in rows] == [D10, D18]
    for r in rows:
        assert r["final_docs"] == reports[r["dump"]]["final_docs"]


# -- the pure parts ------------------------------------------------------------------------

def _stats(step, docs_in, docs_out, chars_in, chars_out, reasons):
    return {"step": step, "docs_in": docs_in, "docs_out": docs_out, "chars_in": chars_in, "chars_out": chars_out,
            "removed_by_reason": reasons}


def test_funnel_and_removals_from_stats():
    totals = DumpTotals()
    for _ in range(2):  # two shards
        totals.add("raw_documents", {"steps": [_stats("raw_documents", 10, 8, 1000, 900, {"not_html": 2})]})
        totals.add("rw_raw", {"steps": [_stats("url_filter", 8, 7, 900, 800, {"blocked": 1}),
                                        _stats("extraction", 7, 4, 800, 100, {"empty": 3})]})
    rows = funnel(totals)
    assert [(r.step, r.docs, r.chars_kind) for r in rows] == [
        ("records read", 20, "body"), ("raw_documents", 16, "html"), ("url_filter", 14, "html"), ("extraction", 8, "text")]
    assert rows[2].share_docs == 14 / 16 and rows[2].share_chars == 1600 / 1800 and rows[3].share_chars == 1.0
    rem = removals(totals)
    assert [(r["reason"], r["docs"]) for r in rem] == [("empty", 6), ("not_html", 4), ("blocked", 2)]
    assert rem[0]["share"] == 6 / 16


def test_histogram_and_drift():
    h = histogram([0.0, 0.5, 1.0, float("nan"), None], bins=2, value_range=(0.0, 1.0))
    assert h["counts"] == [1, 2] and h["missing"] == 2
    assert histogram([], 5)["counts"] == []
    row = {"asset": "x", "step": "s", "chars_kind": "text"}
    read = {"asset": "x", "step": "records read", "chars_kind": "body", "share_docs": 1.2}
    a = {"dump": "A", "funnel": [read, {**row, "share_docs": 0.5}], "removals": [], "languages": {"en": 1}}
    b = {"dump": "B", "funnel": [read, {**row, "share_docs": 0.2}], "removals": [], "languages": {"de": 1}}
    d = drift(b, a)
    assert d["previous_dump"] == "A"
    assert [abs(r["change_pp"]) for r in d["largest"]] == [100.0, 100.0, 30.0]  # languages, then docs left
    assert not [r for r in d["rows"] if "records read" in r["rate"]]  # before the HTML 200 base: no rate
    assert drift(b, None)["rows"] == []
    # a step that removes nothing repeats its predecessor's rate: called out once
    a["funnel"].append({**row, "step": "t", "share_docs": 0.5})
    b["funnel"].append({**row, "step": "t", "share_docs": 0.2})
    assert [r["rate"] for r in drift(b, a)["largest"]].count("docs left after x: t") == 0


def test_markdown_and_plot_survive_hostile_names():
    table = markdown_table(["a"], [["x|y\nz"]])
    assert "x\\|y z" in table
    png = funnel_plot([{"asset": "a|b", "step": "$x$ \\", "docs": 1, "chars": 1, "chars_kind": "text",
                        "share_docs": 1.0, "share_chars": 1.0}], "t")
    assert png.startswith(PNG_MAGIC)
    assert pct(0.1273) == "12.7%" and pct(float("nan")) == "-"


def test_domain_subsets_and_selections_extend_the_funnel(tmp_path):
    """Past rw_deduped the funnel goes on with the dump's domain subsets (classified ones)
    and each selection's documents from this dump (matched by lineage id)."""
    import dataclasses
    import json

    import pyarrow as pa

    from corpus_assets import report_stages
    from corpus_assets.config import PipelineConfig
    from corpus_assets.selection_stages import SELECTION_SCHEMA, table_path
    from corpus_assets.steps.selection.config import SelectionConfig, SelectionTarget
    from corpus_assets.storage import CorpusStore

    store = CorpusStore(str(tmp_path / "corpus"))
    dump, shard = "CC-MAIN-2024-10", "000"
    stats = {"dump": dump, "shard": shard, "baseline_docs": 3, "seconds": 0.0, "extra": {}}
    for asset, step in (("raw_documents", "raw_documents"), ("rw_deduped", "minhash_dedup")):
        with store.publish_partition(f"{asset}/{dump}/{shard}"):
            with store.table_writer(f"{asset}/{dump}/{shard}/documents.parquet") as w:
                w.write_many([{"doc_id": i, "text": "x" * 10} for i in ("a", "b", "c")])
            with store.table_writer(f"{asset}/{dump}/{shard}/removed.parquet") as w:
                w.write_many([])
            store.write_json(f"{asset}/{dump}/{shard}/stats.json", {**stats, "asset": asset, "steps": [
                {"step": step, "docs_in": 3, "docs_out": 3, "chars_in": 30, "chars_out": 30, "removed_by_reason": {}}]})
    for domain, ids in (("math", ["a", "b"]), ("unclassified", ["c"])):
        with store.table_writer(f"domain_subsets/{dump}/{domain}/docs.parquet") as w:
            w.write_many([{"doc_id": i, "shard": shard, "score": 1.0, "chars": 10} for i in ids])
    with store.table_writer(table_path("zipfit_selection", "gsm8k"), SELECTION_SCHEMA) as w:
        w.write_many([{"doc_id": f"rw_deduped/{i}", "source": "rw_deduped", "domain": "web", "lineage_id": i,
                       "url": "", "text": "y" * 7, "score": 1.0, "rank": n} for n, i in enumerate(("a", "zzz"))]
                     + [{"doc_id": "gsm/1", "source": "gsm8k", "domain": "math", "lineage_id": "a", "url": "",
                         "text": "z", "score": 0.5, "rank": 2}])
    target = SelectionTarget(name="gsm8k", path=str(tmp_path / "t.jsonl"))
    config = dataclasses.replace(PipelineConfig(num_shards=1),
                                 selection=dataclasses.replace(SelectionConfig(), targets=(target,)))
    summary = report_stages.dump_summary(store, dump, config, distributions=False)
    tail = {(r["asset"], r["step"]): (r["docs"], r["chars"]) for r in summary["funnel"][-2:]}
    assert tail == {("domain_subsets", "in a domain (not unclassified)"): (2, 20),
                    ("zipfit_selection", "gsm8k: selected from this dump"): (1, 7)}
    assert summary["final"]["asset"] == "rw_deduped"  # the corpus; the subsets after it are not its end
    assert summary["domains"]["unclassified"]["docs"] == 1
    json.dumps(summary)  # stored as report.json


def test_report_runs_by_itself_after_the_dumps_last_document_asset(fixture_crawl, tmp_path):
    """The automation requests corpus_report once dedup_index is materialized, though the
    domain subsets (also upstream) never ran; then the overview, once the report exists.
    On the project's own fixture crawl (no shared data needed)."""
    from corpus_assets.config import load_config
    from corpus_assets.definitions import DUMP_DEDUP_ASSETS, build_definitions
    from corpus_assets_tests.helpers import materialize, materialize_all

    config = load_config(fixture_crawl / "pipeline.yaml")
    defs = build_definitions(config=config, corpus_root=str(tmp_path / "corpus"), crawl_root=str(fixture_crawl))
    keys = [dg.AssetKey("corpus_report"), dg.AssetKey("corpus_overview")]

    def tick(cursor):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        return result.cursor, {"corpus_report": sorted(result.get_requested_partitions(keys[0])),
                               "corpus_overview": result.get_num_requested(keys[1])}

    with dg.instance_for_test() as instance:
        materialize_all(defs, instance, [D10], config.num_shards, dedup=False)
        materialize(defs, instance, DUMP_DEDUP_ASSETS, D10)
        for shard in shard_keys(config.num_shards):
            materialize(defs, instance, ["rw_deduped"], f"{D10}|{shard}")
        cursor, requested = tick(None)
        assert requested == {"corpus_report": [], "corpus_overview": 0}  # dedup_index is missing
        materialize(defs, instance, ["dedup_index"], D10)
        cursor, requested = tick(cursor)
        assert requested == {"corpus_report": [D10], "corpus_overview": 0}
        materialize(defs, instance, ["corpus_report"], D10)
        cursor, requested = tick(cursor)
        assert requested == {"corpus_report": [], "corpus_overview": 1}
        meta = latest(instance, "corpus_report", D10)
        rows = [r.data for r in meta["funnel_table"].records]
        assert rows[-1]["asset"] == "rw_deduped" and meta["final_docs"] == rows[-1]["docs"] > 0
        assert _embedded_pngs(meta["funnel"])[0].startswith(PNG_MAGIC)
