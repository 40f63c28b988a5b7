"""The shared language model end to end on a tiny reference: SentencePiece + Kneser-Ney,
cached by its settings (trained once), kenlm and the numpy tables agreeing, and CCNet's
document perplexity."""

import gzip
import json
import math

import pytest

from corpus_assets.steps.lm import model as lm_model
from corpus_assets.steps.lm.config import LmConfig, LmReference
from corpus_assets.steps.lm.kneser_ney import perplexity

SENTENCES = [
    "The river flows through the old town and under the stone bridge.",
    "Many people visit the town in summer to see the bridge.",
    "The old bridge was built in 1820 by local workers.",
    "In winter the river sometimes freezes near the town.",
    "The town has a small museum about the history of the river.",
    "Local workers also built the church next to the museum.",
] * 20


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(0, len(SENTENCES), 3):
            fh.write(json.dumps({"text": "\n".join(SENTENCES[i:i + 3]), "id": i}) + "\n")
        fh.write("not json\n")
        fh.write(json.dumps(["a list"]) + "\n")
        fh.write(json.dumps({"text": 42}) + "\n")
    return path


@pytest.fixture(scope="module")
def config(reference, tmp_path_factory):
    return LmConfig(references=(LmReference("en", str(reference)),), order=3, vocab_size=100,
                    cache_dir=str(tmp_path_factory.mktemp("lmcache")))


@pytest.fixture(scope="module")
def trained(config):
    return lm_model.load_or_train(config, "en")


def test_trains_once_then_reads_the_cache(config, trained, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(lm_model, "train", no_training)
    again = lm_model.load_or_train(config, "en")
    assert again.folder == trained.folder
    # a setting that shapes the model is a new cache entry; the query engine is not
    other = LmConfig(references=config.references, order=2, vocab_size=100, cache_dir=config.cache_dir)
    assert lm_model.model_folder(other, "en") != trained.folder
    same = LmConfig(references=config.references, order=3, vocab_size=100, cache_dir=config.cache_dir,
                    backend="numpy")
    assert lm_model.model_folder(same, "en") == trained.folder
    assert trained.info["reference_lines"] == len(SENTENCES)  # bad records skipped


def test_kenlm_and_numpy_backends_agree(config, trained):
    pytest.importorskip("kenlm", reason="kenlm is not installed")
    numpy_lm = lm_model.NgramLanguageModel(trained.folder, backend="numpy")
    assert trained.backend == "kenlm" and numpy_lm.backend == "numpy"
    for text in ["The river flows under the bridge.", "Zebras quantify xylophones!\n\nsecond line", "", "1820"]:
        assert numpy_lm.document_perplexity(text) == pytest.approx(trained.document_perplexity(text), rel=1e-6)


def test_document_perplexity_is_ccnets_formula(trained):
    text = "The river flows under the bridge.\nThe town has a museum."
    lines = text.split("\n")
    total = sum(trained.log10_probs([line]).sum() for line in lines)
    length = sum(len(trained.pieces(line)) + 1 for line in lines)
    assert trained.document_perplexity(text) == pytest.approx(10 ** (-total / length))
    # in-domain text is far less perplexing than noise
    assert trained.document_perplexity(SENTENCES[0]) * 5 < trained.document_perplexity("qzx vvk jjj ppp www")
    # cc_net's code: one sentence for the whole document
    whole = trained.document_perplexity(text, split_lines=False)
    assert whole != trained.document_perplexity(text) and math.isfinite(whole)
    assert perplexity(-3.0, 3) == pytest.approx(10.0)


def test_bits_per_byte_for_other_callers(trained):
    in_domain = lm_model.bits_per_byte(trained, SENTENCES[:6])
    noise = lm_model.bits_per_byte(trained, ["qzx vvk jjj ppp www kkk"] * 6)
    assert 0 < in_domain < noise
    text = SENTENCES[0]
    expected = -trained.score_lines([text])[0] * math.log2(10) / len(text.encode())
    assert lm_model.bits_per_byte(trained, [text]) == pytest.approx(expected)
    assert math.isnan(lm_model.bits_per_byte(trained, [""]))
    assert lm_model.corpus_perplexity(trained, SENTENCES[:6]) > 1


def test_train_on_texts_for_callers_that_train_on_a_selection(tmp_path):
    lm = lm_model.train_on_texts(SENTENCES, tmp_path / "m", order=3, vocab_size=80, backend="numpy")
    assert lm.info["order"] == 3 and lm.backend == "numpy"
    assert lm.document_perplexity(SENTENCES[1]) < lm.document_perplexity("qzx vvk jjj ppp")
    with pytest.raises(ValueError, match="no text"):
        lm_model.train_on_texts(["", "  "], tmp_path / "empty")


def test_hostile_text_scores_without_raising(trained):
    for text in ["\ud800 lone surrogate", "\x00\x00", "", "\n\n\n", "a" * 50_000, "💥" * 500, "日本語"]:
        value = trained.document_perplexity(text)
        assert value > 0 and math.isfinite(value), text[:10]


def test_a_reference_without_text_fails_clearly(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text(json.dumps({"title": "no text field"}) + "\n")
    config = LmConfig(references=(LmReference("en", str(path)),), order=2, vocab_size=50,
                      cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="has no text"):
        lm_model.load_or_train(config, "en")
    assert not any((tmp_path / "cache").iterdir())  # no half-written model left behind
    with pytest.raises(KeyError, match="no lm reference"):
        lm_model.model_folder(config, "de")


def test_settings_are_validated():
    with pytest.raises(ValueError, match="vocab_size"):
        LmConfig(order=5, vocab_size=10_000)
    with pytest.raises(ValueError, match="one reference per language"):
        LmConfig(references=(LmReference("en", "a"), LmReference("en", "b")))
