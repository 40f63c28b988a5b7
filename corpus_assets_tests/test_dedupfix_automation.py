"""Issue 10, item 14: a threshold change must not leave fuzzy dedup on old clusters.

The crawl: the first dump holds an article X and a near copy S of it (X less a few
words, under another URL); the second dump re-crawls S. With the default thresholds X
is kept and S removed as its duplicate. A stricter ``max_words`` (between the two word
counts) then removes X in rw_filtered, so S must survive fuzzy dedup. The clusters built
before the change still say "S duplicates X": applying them would drop both. After the
change, automation (eager conditions + the crawl-order sensor) must settle on exactly
what a from-scratch run with the new settings produces."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest

from corpus_assets import dedup_stages
from corpus_assets.config import load_config
from corpus_assets.definitions import DUMP_DEDUP_ASSETS, build_definitions
from corpus_assets.fixtures import ARTICLES_EN, _html, _write_warc
from corpus_assets.resources import CorpusStoreResource
from corpus_assets.stages import documents_path, removed_path
from corpus_assets.storage import CorpusStore
from corpus_assets_tests.helpers import QUIET, materialize, materialize_all

D10, D18 = "CC-MAIN-2024-10", "CC-MAIN-2024-18"
SHARD = "000"
JOB_ASSETS = {"dump_dedup_job": DUMP_DEDUP_ASSETS, "rw_deduped_job": ["rw_deduped"], "dedup_index_job": ["dedup_index"]}
ORDER = ["crawl_manifest", "raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "minhash_signatures",
         "minhash_buckets", "duplicate_clusters", "exact_substring_spans", "rw_deduped", "dedup_index"]
X_URL = "https://news.example.org/science/river-survey"
S_URL = "https://mirror.example.net/river-survey-copy"


def _build_crawl(root):
    import gzip

    url, title, paragraphs = ARTICLES_EN[0]
    assert url == X_URL
    assert paragraphs[-1].endswith(" that has been made over the past ten years.")
    short = paragraphs[:-1] + [paragraphs[-1][: -len(" that has been made over the past ten years.")] + "."]
    x = _html(title, paragraphs).encode()
    s = _html(title, short).encode()
    html = "text/html; charset=utf-8"
    other = [(u, "200 OK", html, _html(t, ps).encode()) for u, t, ps in ARTICLES_EN[1:]]
    dumps = {D10: ([(X_URL, "200 OK", html, x), (S_URL, "200 OK", html, s), other[2]], "2024-02-20T08:00:00Z"),
             D18: ([(S_URL, "200 OK", html, s), other[1]], "2024-04-12T08:00:00Z")}
    for dump, (fetches, date) in dumps.items():
        rel = f"crawl-data/{dump}/segments/0/warc/{dump}-00000.warc.gz"
        _write_warc(root / rel, fetches, date)
        with gzip.open(root / f"crawl-data/{dump}/warc.paths.gz", "wt") as fh:
            fh.write(rel + "\n")
    return root


def _snapshot(store, dump):
    docs = [(d["doc_id"], d["url"], d["text"]) for d in store.iter_rows(documents_path("rw_deduped", dump, SHARD))]
    removed = [(r["doc_id"], r["url"], r["step"], r["reason"], r["detail"])
               for r in store.read_table(removed_path("rw_deduped", dump, SHARD)).to_pylist()]
    return sorted(docs), sorted(removed)


def _settle(defs, instance, root, cursor, max_ticks=10) -> list[str]:
    """Tick the automation sensor's conditions and the crawl-order sensor, running what
    they request (in dependency order), until neither requests anything. Returns the
    automation runs that failed (asset and partition)."""
    sensor = defs.get_sensor_def("dedup_order_sensor")
    seen_keys, failed = set(), []
    for _ in range(max_ticks):
        launched = 0
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        for asset in ORDER:
            for key in sorted(str(k) for k in result.get_requested_partitions(dg.AssetKey(asset))):
                run = dg.materialize(defs.assets, selection=[asset], partition_key=key, instance=instance,
                                     resources=defs.resources, run_config=QUIET, raise_on_error=False)
                launched += 1
                if not run.success:
                    failed.append(f"{asset} {key}")
        context = dg.build_sensor_context(instance=instance, resources={"corpus_store": CorpusStoreResource(root=root)})
        requests = sensor(context)
        for request in requests if isinstance(requests, list) else [requests]:
            if isinstance(request, dg.RunRequest) and request.run_key not in seen_keys:
                seen_keys.add(request.run_key)  # the daemon never launches a run key twice
                materialize(defs, instance, JOB_ASSETS[request.job_name], request.partition_key)
                launched += 1
        if not launched:
            return failed
    raise AssertionError(f"automation did not settle in {max_ticks} ticks")


@pytest.fixture(scope="module")
def crawl(tmp_path_factory, fixture_crawl):
    root = _build_crawl(tmp_path_factory.mktemp("threshold_crawl"))
    base = dataclasses.replace(load_config(fixture_crawl / "pipeline.yaml"), num_shards=1)
    return root, base


def test_threshold_change_settles_on_the_from_scratch_result(tmp_path, crawl):
    root, before = crawl
    corpus = tmp_path / "corpus"
    defs = build_definitions(config=before, corpus_root=str(corpus), crawl_root=str(root))
    store = CorpusStore(str(corpus))
    with dg.instance_for_test() as instance:
        materialize_all(defs, instance, [D10, D18], 1)
        signals = {d["url"]: d["gopher_word_count"] for d in
                   store.iter_rows(documents_path("rw_quality_signals", D10, SHARD), columns=["url", "gopher_word_count"])}
        assert signals[X_URL] > signals[S_URL]
        (removed,) = [r for r in _snapshot(store, D10)[1] if r[1] == S_URL]
        assert removed[3] == "minhash_duplicate", "precondition: S is X's near duplicate"

        # The threshold change: X is now too long, S is not.
        after = dataclasses.replace(before, quality_thresholds=dataclasses.replace(
            before.quality_thresholds, max_words=signals[S_URL]))
        changed = build_definitions(config=after, corpus_root=str(corpus), crawl_root=str(root))
        # The automation daemon was ticking before the change (a first tick only records
        # the state that later ticks compare with).
        cursor = dg.evaluate_automation_conditions(defs=changed, instance=instance).cursor
        # What a user does after changing a threshold: re-materialize the stale decision
        # asset. Eager automation takes over from there.
        materialize(changed, instance, ["rw_filtered", "minhash_signatures"], f"{D10}|{SHARD}", check_count=1)
        # The old clusters are refused, not applied to the new documents.
        with pytest.raises(dedup_stages.StaleDedupError, match="re-run .* from minhash_buckets"):
            dedup_stages.build_rw_deduped(store, D10, SHARD, after, [D10, D18])
        with pytest.raises(dedup_stages.StaleDedupError):
            dedup_stages.build_exact_substring_spans(store, D10, [SHARD], after)
        materialize(changed, instance, ["rw_filtered"], f"{D18}|{SHARD}", check_count=1)
        failed = _settle(changed, instance, str(corpus), cursor)
        settled = {dump: _snapshot(store, dump) for dump in (D10, D18)}

    scratch = CorpusStore(str(tmp_path / "scratch"))
    fresh = build_definitions(config=after, corpus_root=scratch.root, crawl_root=str(root))
    with dg.instance_for_test() as instance:
        materialize_all(fresh, instance, [D10, D18], 1)
        expected = {dump: _snapshot(scratch, dump) for dump in (D10, D18)}

    kept_urls = {url for _, url, _ in expected[D10][0]}
    assert S_URL in kept_urls and X_URL not in kept_urls, "the new setting keeps the copy"
    assert settled == expected, failed
    # The second dump was redone against the first dump's new index: its copy of S now
    # names the first dump's S as the kept document.
    s_doc = next(doc_id for doc_id, url, _ in expected[D10][0] if url == S_URL)
    (d18_removal,) = [r for r in settled[D18][1] if r[1] == S_URL]
    assert f"kept={s_doc} kept_dump={D10}" in d18_removal[4]
