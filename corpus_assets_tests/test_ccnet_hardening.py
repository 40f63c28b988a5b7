"""Regressions for the breaker's findings against CCNet's perplexity stages and the shared
n-gram LM (issue 17 part A): LM changes reach the code versions, orders kenlm cannot read,
broken references, reference paths at settings load, a cache that recovers from partial,
corrupt or misplaced folders, and documents without words. Every model here trains on a
few hundred characters (well under a second)."""

import gzip
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corpus_assets.assets import ccnet as ccnet_assets
from corpus_assets.config import ConfigError, PipelineConfig, load_config
from corpus_assets.steps.base import run_steps
from corpus_assets.steps.ccnet.perplexity import PerplexityScore
from corpus_assets.steps.lm import model as lm_model
from corpus_assets.steps.lm.config import KENLM_ORDERS, LmConfig, LmReference
from corpus_assets.steps.lm.kneser_ney import KneserNeyModel

SENTENCES = [
    "The river flows through the old town and under the stone bridge.",
    "Many people visit the town in summer to see the bridge.",
    "The old bridge was built in 1820 by local workers.",
    "In winter the river sometimes freezes near the town.",
] * 10


def _write_reference(path, sentences=SENTENCES, encoding="utf-8"):
    data = "".join(json.dumps({"text": s}, ensure_ascii=False) + "\n" for s in sentences).encode(encoding)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture()
def reference(tmp_path):
    return _write_reference(tmp_path / "ref.jsonl")


def _config(reference, tmp_path, **changes):
    settings = dict(references=(LmReference("en", str(reference)),), order=3, vocab_size=60,
                    cache_dir=str(tmp_path / "cache"))
    settings.update(changes)
    return LmConfig(**settings)


def _versions(lm):
    """The code versions of ccnet_perplexity, ccnet_cutoffs and ccnet_buckets, as the
    asset definitions carry them."""
    assets = ccnet_assets.build_ccnet_assets(PipelineConfig(num_shards=2, lm=lm))
    found = {k.to_user_string(): v for a in assets for k, v in a.code_versions_by_key.items()}
    return tuple(found[name] for name in ("ccnet_perplexity", "ccnet_cutoffs", "ccnet_buckets"))


# -- 1. an LM change re-runs perplexity, cut-offs and buckets ---------------------------

def test_every_lm_change_changes_the_perplexity_cutoff_and_bucket_versions(reference, tmp_path):
    base = _config(reference, tmp_path)
    before = _versions(base)
    other_file = _write_reference(tmp_path / "other.jsonl", SENTENCES[:8])
    changed = {
        "order": _config(reference, tmp_path, order=4),
        "vocab_size": _config(reference, tmp_path, vocab_size=50),
        "reference": _config(reference, tmp_path, references=(LmReference("en", str(other_file)),)),
        "backend": _config(reference, tmp_path, backend="numpy"),
        "backend named": _config(reference, tmp_path, backend="kenlm"),
        "max_reference_chars": _config(reference, tmp_path, max_reference_chars=100),
    }
    for name, config in changed.items():
        after = _versions(config)
        assert all(a != b for a, b in zip(before, after)), name
    # where the models are cached is not what they are
    assert _versions(_config(reference, tmp_path, cache_dir=str(tmp_path / "elsewhere"))) == before
    # the same bytes at another path are the same model; edited bytes at the same path are not
    copy = tmp_path / "copy.jsonl"
    shutil.copy(reference, copy)
    assert _versions(_config(reference, tmp_path, references=(LmReference("en", str(copy)),))) == before
    time.sleep(0.01)  # a new mtime, so the digest cache cannot answer from the old bytes
    _write_reference(reference, SENTENCES + ["One more line about the river."])
    assert all(a != b for a, b in zip(before, _versions(base)))


def test_a_missing_reference_still_gives_a_version_that_names_it(tmp_path):
    config = _config(tmp_path / "absent.jsonl", tmp_path)
    identity = lm_model.model_identity(config)
    assert identity["en"]["model"].startswith("missing:") and "absent.jsonl" in identity["en"]["model"]


# -- 2. orders kenlm cannot read, order 0 -------------------------------------------------

def test_order_zero_and_out_of_range_are_settings_errors(tmp_path):
    for order in (0, -1, 9):
        with pytest.raises(ValueError, match="lm.order"):
            LmConfig(order=order)
    settings = tmp_path / "s.yaml"
    settings.write_text("lm:\n  order: 0\n")
    with pytest.raises(ConfigError, match="lm.order"):
        load_config(settings)
    settings.write_text("lm:\n  order: 7\n  vocab_size: 300\n  backend: kenlm\n")
    with pytest.raises(ConfigError, match="lm.order: .*lm.order 7 with lm.backend kenlm: the kenlm package reads"):
        load_config(settings)


@pytest.mark.parametrize("order", [1, 7])
def test_orders_kenlm_cannot_read_fall_back_to_numpy_or_are_refused(reference, tmp_path, order, caplog):
    with pytest.raises(ValueError, match=f"lm.order {order} with lm.backend kenlm"):
        _config(reference, tmp_path, order=order, vocab_size=40, backend="kenlm")
    caplog.set_level("INFO", logger=lm_model.__name__)
    lm = lm_model.load_or_train(_config(reference, tmp_path, order=order, vocab_size=40), "en")
    assert lm.backend == "numpy" and f"lm.order {order}" in lm.backend_reason
    assert any(f"lm.order {order}" in r.getMessage() for r in caplog.records)
    assert lm.document_perplexity(SENTENCES[0]) < lm.document_perplexity("qzx vvk jjj ppp")


@pytest.mark.parametrize("order", [1, 2, 6, 7])
def test_kenlm_reads_exactly_the_orders_we_give_it(tmp_path, order):
    kenlm = pytest.importorskip("kenlm", reason="kenlm is not installed")
    model = KneserNeyModel(order, 10, 1, 2, 0).fit([[3, 4, 5, 3, 6, 7, 8, 3], [4, 5, 6, 7, 8, 9]])
    path = tmp_path / "m.arpa"
    model.write_arpa(path, ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, 10)])
    if order in KENLM_ORDERS:
        kenlm.Model(str(path))
    else:
        with pytest.raises(OSError):
            kenlm.Model(str(path))


# -- 3. broken references ------------------------------------------------------------------

def test_a_non_utf8_reference_names_the_file_and_line(tmp_path):
    latin1 = _write_reference(tmp_path / "latin1.jsonl", SENTENCES[:3] + ["Un café près du pont."], "latin-1")
    with pytest.raises(ValueError, match=r"lm.references\[en\].path: .*latin1.jsonl is not UTF-8 \(line 4"):
        lm_model.load_or_train(_config(latin1, tmp_path), "en")
    assert not any(p for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("content, match", [
    (b"", r"has no text .*\(0 records\)"),
    (b'{"title": "no text"}\n[1]\nnot json\n', r"has no text in fields \['text'\] \(3 records, skipped"),
])
def test_a_reference_without_text_names_the_setting(tmp_path, content, match):
    path = tmp_path / "broken.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"lm.references\[en\]: .*broken.jsonl " + match):
        lm_model.load_or_train(_config(path, tmp_path), "en")


def test_a_truncated_gzip_reference_names_the_file(tmp_path):
    path = _write_reference(tmp_path / "ref.jsonl.gz")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"lm.references\[en\].path: .*ref.jsonl.gz cannot be read"):
        lm_model.load_or_train(_config(path, tmp_path), "en")


def test_a_vocabulary_too_small_for_sentencepiece_names_the_setting_and_the_minimum(reference, tmp_path):
    with pytest.raises(ValueError, match=r"lm.vocab_size 8 is too small .* at least \d+ pieces"):
        lm_model.load_or_train(_config(reference, tmp_path, vocab_size=8), "en")


def test_skipped_reference_records_are_counted_in_the_model(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(_write_reference(tmp_path / "good.jsonl").read_text() + "not json\n{\"title\": 1}\n")
    lm = lm_model.load_or_train(_config(path, tmp_path), "en")
    assert lm.info["reference_records"] == len(SENTENCES) + 2
    assert lm.info["reference_records_skipped"] == {"not_json": 1, "not_an_object": 0, "no_text_field": 1}
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (tmp_path / "good.jsonl").read_bytes())
    stats = lm_model.ReferenceStats()
    assert len(list(lm_model.reference_lines(LmReference("en", str(bom)), stats=stats))) == len(SENTENCES)
    assert not any(stats.skipped.values())


# -- 4. reference paths at settings load ---------------------------------------------------

def test_reference_paths_resolve_against_the_settings_file_and_must_exist(tmp_path):
    folder = tmp_path / "configs"
    (folder / "refs").mkdir(parents=True)
    _write_reference(folder / "refs" / "en.jsonl")
    settings = folder / "s.yaml"
    settings.write_text("lm:\n  references: [{language: en, path: refs/en.jsonl}]\n  cache_dir: cache\n")
    config = load_config(settings)
    assert config.lm.references[0].path == str(folder / "refs" / "en.jsonl")
    assert config.lm.cache_dir == str(folder / "cache")
    settings.write_text("lm:\n  references: [{language: en, path: refs/missing.jsonl}]\n")
    with pytest.raises(ConfigError, match=r"lm.references.0.path: .*no such file: .*configs/refs/missing.jsonl"):
        load_config(settings)
    settings.write_text("lm:\n  references: [{language: en, path: ''}]\n")
    with pytest.raises(ConfigError, match="lm.references.0.path"):
        load_config(settings)
    (folder / "not_a_folder").write_text("x")
    settings.write_text("lm:\n  cache_dir: not_a_folder\n")
    with pytest.raises(ConfigError, match=r"lm.cache_dir: .*not_a_folder is a file"):
        load_config(settings)


def test_the_default_reference_is_the_shared_sample_by_absolute_path():
    path = LmConfig().references[0].path
    assert os.path.isabs(path) and path.endswith("reference/enwiki_articles.jsonl.gz")


# -- 5. the cache recovers -----------------------------------------------------------------

@pytest.fixture()
def trained(reference, tmp_path):
    config = _config(reference, tmp_path)
    return config, lm_model.load_or_train(config, "en")


def _expected(config, text=SENTENCES[0]):
    return lm_model.load_or_train(config, "en").document_perplexity(text)


def test_a_partial_model_folder_is_trained_again(trained):
    config, lm = trained
    want = lm.document_perplexity(SENTENCES[0])
    (lm.folder / "model.json").unlink()  # what a copy interrupted before its last file leaves
    assert _expected(config) == pytest.approx(want)
    (lm.folder / "tables.npz").unlink()
    assert _expected(config) == pytest.approx(want)
    (lm.folder / "model.json").write_text("{")
    assert _expected(config) == pytest.approx(want)


@pytest.mark.parametrize("same_size", [False, pytest.param(True, marks=pytest.mark.skipif(
    importlib.util.find_spec("kenlm") is None,
    reason="a same-size corrupt ARPA file is found by kenlm's parser (kenlm is not installed)"))])
def test_a_corrupt_arpa_file_is_trained_again(trained, same_size):
    config, lm = trained
    want = lm.document_perplexity(SENTENCES[0])
    arpa = lm.folder / "lm.arpa"
    size = arpa.stat().st_size
    arpa.write_bytes(b"x" * size if same_size else b"garbage")
    assert _expected(config) == pytest.approx(want)
    assert b"\\data\\" in arpa.read_bytes()[:100]  # a whole ARPA file again


def test_a_file_in_place_of_the_model_folder_is_replaced(trained):
    config, lm = trained
    want = lm.document_perplexity(SENTENCES[0])
    shutil.rmtree(lm.folder)
    lm.folder.write_text("not a model")
    assert _expected(config) == pytest.approx(want)
    assert lm.folder.is_dir()


def test_a_file_where_the_cache_folder_should_be_names_the_setting(reference, tmp_path):
    blocker = tmp_path / "cache_file"
    blocker.write_text("x")
    for cache in (blocker, blocker / "below"):
        with pytest.raises(lm_model.LmCacheError, match=r"lm.cache_dir .*cache_file is a file"):
            lm_model.load_or_train(_config(reference, tmp_path, cache_dir=str(cache)), "en")


def test_scratch_folders_of_dead_trainers_are_removed_on_the_next_run(trained):
    config, lm = trained
    root = lm.folder.parent
    host = socket.gethostname().replace("-", "_")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    killed = root / f".{lm.folder.name}.tmp-{dead_pid}-{host}-ab12"
    running = root / f".{lm.folder.name}.tmp-1-{host}-cd34"  # pid 1 is alive
    elsewhere = root / f".{lm.folder.name}.tmp-{dead_pid}-otherhost-ef56"
    ancient = root / f".{lm.folder.name}.tmp-1-otherhost-0a0b"
    set_aside = root / f".{lm.folder.name}.broken-{dead_pid}-123456789"  # killed while deleting it
    for folder in (killed, running, elsewhere, ancient, set_aside):
        folder.mkdir()
        (folder / "sp.model").write_bytes(b"half")
    day_ago = time.time() - 2 * lm_model.STALE_SCRATCH_SECONDS
    os.utime(ancient, (day_ago, day_ago))
    lm_model.load_or_train(config, "en")
    assert not killed.exists() and not ancient.exists() and not set_aside.exists()
    assert running.exists() and elsewhere.exists()  # maybe still training


KILLED_TRAINER = """
import sys, time
from corpus_assets.steps.lm import model as lm_model
from corpus_assets.steps.lm.config import LmConfig, LmReference

def slow_train(config, reference, folder):
    (folder / "sp.model").write_bytes(b"half written")
    print("training", flush=True)
    time.sleep(600)

lm_model.train = slow_train
config = LmConfig(references=(LmReference("en", sys.argv[1]),), order=3, vocab_size=60, cache_dir=sys.argv[2])
lm_model.load_or_train(config, "en")
"""


def test_a_trainer_killed_with_sigkill_leaves_scratch_that_the_next_run_removes(reference, tmp_path):
    config = _config(reference, tmp_path)
    trainer = subprocess.Popen([sys.executable, "-c", KILLED_TRAINER, str(reference), config.cache_dir],
                               stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parent.parent)  # this checkout's code
    try:
        assert trainer.stdout.readline().strip() == "training"
    finally:
        trainer.kill()  # SIGKILL: no finally block of the trainer runs
        trainer.wait()
    root = tmp_path / "cache"
    assert [p.name for p in root.iterdir() if ".tmp-" in p.name], "the killed trainer left its scratch"
    lm = lm_model.load_or_train(config, "en")
    assert sorted(p.name for p in root.iterdir()) == [lm.folder.name]


def test_a_failed_training_leaves_no_scratch_behind(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(ValueError):
        lm_model.load_or_train(_config(path, tmp_path), "en")
    assert list((tmp_path / "cache").iterdir()) == []


# -- 6. a document without words ------------------------------------------------------------

def test_a_whitespace_only_document_is_removed_with_a_reason_not_scored(trained):
    config, lm = trained
    docs = [{"doc_id": "0", "language": "en", "text": "   \n\t \n  "},
            {"doc_id": "1", "language": "en", "text": SENTENCES[0]}]
    removed = []
    kept = list(run_steps([PerplexityScore(lambda language: lm)], docs,
                          lambda doc, step, reason, detail: removed.append((doc["doc_id"], reason)))[0])
    assert removed == [("0", "no_words")]
    assert [d["doc_id"] for d in kept] == ["1"] and kept[0]["ccnet_perplexity"] > 1


# -- round 2: tables over a dump's shards refuse newer upstream data (r2 f03, f03b) ----------

DUMP = "CC-MAIN-2024-10"


def _publish_docs(store, asset, shard, docs, extra=None):
    from corpus_assets.stages import run_document_stage
    from corpus_assets.steps.base import Step

    class Keep(Step):
        name = "keep"

        def apply(self, doc):
            return None

    return run_document_stage(store, asset, DUMP, shard, iter(docs), [Keep()], extra=extra)


def _texts(shard, n, suffix=""):
    return [{"doc_id": f"{shard}-{i}", "url": f"https://x/{shard}/{i}",
             "text": f"shared line for all\nown line {shard.replace('0', 'o')} {chr(97 + i)}{suffix}"}
            for i in range(n)]


def test_line_dedup_refuses_duplicates_counted_over_older_text(tmp_path):
    import dataclasses

    from corpus_assets import ccnet_stages
    from corpus_assets.storage import CorpusStore

    store = CorpusStore(str(tmp_path / "store"))
    config = PipelineConfig()
    config = dataclasses.replace(config, ccnet=dataclasses.replace(config.ccnet, line_dedup_group_shards=2))
    for shard in ("000", "001"):
        _publish_docs(store, ccnet_stages.TEXT, shard, _texts(shard, 3))
    stats = ccnet_stages.build_ccnet_line_duplicates(store, DUMP, ["000", "001"], config)
    assert set(stats["groups"][0]["versions"]) == {"000", "001"}
    assert len(ccnet_stages.load_group_duplicates(store, DUMP, "000", config)) == 1
    # the other shard of the group re-extracted (fewer documents): the table is stale for both
    _publish_docs(store, ccnet_stages.TEXT, "001", _texts("001", 1))
    for shard in ("000", "001"):
        with pytest.raises(RuntimeError,
                           match="ccnet_text CC-MAIN-2024-10\\|001 .*re-materialize ccnet_line_duplicates"):
            ccnet_stages.load_group_duplicates(store, DUMP, shard, config)
    ccnet_stages.build_ccnet_line_duplicates(store, DUMP, ["000", "001"], config)
    assert len(ccnet_stages.load_group_duplicates(store, DUMP, "000", config)) == 1


def test_buckets_refuse_cutoffs_of_other_perplexities(reference, tmp_path):
    import dataclasses

    from corpus_assets import ccnet_stages
    from corpus_assets.storage import CorpusStore

    store = CorpusStore(str(tmp_path / "store"))
    config = dataclasses.replace(PipelineConfig(), lm=_config(reference, tmp_path))
    identity = {"lm": ccnet_stages.perplexity_identity(config)}

    def scored(shard, values):
        return [{"doc_id": f"{shard}-{i}", "url": "u", "text": "t", "language": "en", "ccnet_perplexity": v}
                for i, v in enumerate(values)]

    _publish_docs(store, ccnet_stages.PERPLEXITY, "000", scored("000", [10.0, 20, 30, 40, 50]), identity)
    _publish_docs(store, ccnet_stages.PERPLEXITY, "001", scored("001", [15.0, 25, 35]), identity)
    stored = ccnet_stages.build_ccnet_cutoffs(store, DUMP, ["000", "001"], config)
    assert set(stored["perplexity_versions"]) == {"000", "001"}
    ccnet_stages.build_ccnet_buckets(store, DUMP, "000", config)
    # shard 001 re-scored from other documents (a min_chars change upstream), cut-offs not re-run:
    # every shard's buckets are refused, the cut-offs' sample is not what is there now
    _publish_docs(store, ccnet_stages.PERPLEXITY, "001", scored("001", [500.0, 600]), identity)
    for shard in ("000", "001"):
        with pytest.raises(RuntimeError, match="ccnet_perplexity CC-MAIN-2024-10\\|001 .*re-materialize ccnet_cutoffs"):
            ccnet_stages.build_ccnet_buckets(store, DUMP, shard, config)
    ccnet_stages.build_ccnet_cutoffs(store, DUMP, ["000", "001"], config)
    ccnet_stages.build_ccnet_buckets(store, DUMP, "001", config)
    # cut-offs that record no versions (an older build) are refused too
    old = store.read_json(ccnet_stages.cutoffs_path(DUMP))
    del old["perplexity_versions"]
    with store.publish_partition(f"{ccnet_stages.CUTOFFS}/{DUMP}"):
        store.write_json(ccnet_stages.cutoffs_path(DUMP), old)
    with pytest.raises(RuntimeError, match="does not record"):
        ccnet_stages.build_ccnet_buckets(store, DUMP, "000", config)


@pytest.mark.parametrize("name", ["lm.arpa", "tables.npz"])
def test_a_same_size_edit_of_a_model_file_is_found_by_its_sha256(trained, name):
    """r2 f04: the cache was verified by sizes only; a same-size edit (still a valid ARPA
    file) loaded silently and scored otherwise under the same identity."""
    import re

    config, lm = trained
    want = lm.document_perplexity(SENTENCES[0])
    path = lm.folder / name
    data = path.read_bytes()
    if name == "lm.arpa":
        edited = re.sub(rb"(?m)^-1\.", b"-2.", data)
    else:
        edited = data[:-64] + bytes(b ^ 0xFF for b in data[-64:])
    assert edited != data and len(edited) == len(data)
    path.write_bytes(edited)
    assert "SHA-256" in lm_model.verify_folder(lm.folder)
    assert _expected(config) == pytest.approx(want)  # trained again, not loaded
    assert path.read_bytes() == data  # training is deterministic: the same bytes again
    # a folder whose model.json records no SHA-256 (an older code's) is not trusted either
    info = json.loads((lm.folder / "model.json").read_text())
    del info["file_sha256"]
    (lm.folder / "model.json").write_text(json.dumps(info))
    assert "no SHA-256" in lm_model.verify_folder(lm.folder)


def test_perplexities_of_another_model_content_are_refused(reference, tmp_path):
    """r2 f04: one identity (settings key), two model contents (two hosts' caches): the
    content digest stored with the perplexities tells them apart."""
    import dataclasses

    from corpus_assets import ccnet_stages
    from corpus_assets.storage import CorpusStore

    store = CorpusStore(str(tmp_path / "store"))
    config = dataclasses.replace(PipelineConfig(), lm=_config(reference, tmp_path))
    identity = ccnet_stages.perplexity_identity(config)
    rows = [{"doc_id": f"d{i}", "url": "u", "text": "t", "language": "en", "ccnet_perplexity": float(i)}
            for i in range(1, 6)]
    for shard, content in (("000", "aaa"), ("001", "bbb")):
        _publish_docs(store, ccnet_stages.PERPLEXITY, shard, rows, {"lm": identity, "lm_content": {"en": content}})
    with pytest.raises(RuntimeError, match="different content"):
        ccnet_stages.build_ccnet_cutoffs(store, DUMP, ["000", "001"], config)
    ccnet_stages.build_ccnet_cutoffs(store, DUMP, ["000"], config)
    ccnet_stages.build_ccnet_buckets(store, DUMP, "000", config)
    _publish_docs(store, ccnet_stages.PERPLEXITY, "000", rows, {"lm": identity, "lm_content": {"en": "ccc"}})
    with pytest.raises(RuntimeError, match="other content"):
        ccnet_stages.build_ccnet_buckets(store, DUMP, "000", config)
