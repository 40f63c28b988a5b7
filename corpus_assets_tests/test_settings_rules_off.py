"""Every decision rule switched off is a valid setting: rw_filtered then keeps every
document, counts them as kept, and its conservation check passes (issue 10, item 20)."""

from __future__ import annotations

import yaml

from corpus_assets.partitions import shard_keys
from corpus_assets.stages import documents_path
from corpus_assets.steps.quality.decisions import FilterThresholds, build_decision_steps
from corpus_assets_tests.helpers import latest, pipeline_run

DUMP = "CC-MAIN-2024-10"
ALL_OFF = {"gopher_repetition": False, "gopher_quality": False, "line_corrections": False}


def test_no_rule_means_one_pass_through_step():
    steps = build_decision_steps(FilterThresholds(**ALL_OFF))
    assert len(steps) == 1
    doc = {"text": "anything", "qs_presets": ""}
    assert steps[0].apply(doc) is None and doc == {"text": "anything", "qs_presets": ""}


def test_rw_filtered_with_every_rule_off_keeps_everything_and_passes_its_check(tmp_path, fixture_crawl):
    settings = yaml.safe_load((fixture_crawl / "pipeline.yaml").read_text())
    settings["url_filter"]["blocklist_dir"] = str(fixture_crawl / settings["url_filter"]["blocklist_dir"])
    settings["quality_thresholds"] = ALL_OFF
    config_file = tmp_path / "rules_off.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    # pipeline_run materializes every shard asset and asserts that every blocking check
    # (conservation among them) passed.
    with pipeline_run(config_file, fixture_crawl, tmp_path / "corpus", [DUMP], dedup=False) as (_, instance, config, store):
        kept_total = 0
        for shard in shard_keys(config.num_shards):
            partition = f"{DUMP}|{shard}"
            signals = latest(instance, "rw_quality_signals", partition)
            filtered = latest(instance, "rw_filtered", partition)
            assert filtered["docs_in"] == signals["docs_out"] == filtered["docs_out"]
            assert filtered["docs_removed"] == 0
            assert store.row_count(documents_path("rw_filtered", DUMP, shard)) == filtered["docs_out"]
            kept_total += filtered["docs_out"]
        assert kept_total > 0
