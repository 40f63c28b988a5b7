"""The optional language pre-screen: which pages it lets through to extraction, its
audit, its settings, and that on the sample crawl it changes nothing that is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from corpus_assets.config import load_config
from corpus_assets.steps.base import run_steps
from corpus_assets.steps.extraction import Extract
from corpus_assets.steps.langid import LanguageId, LanguageIdConfig
from corpus_assets.steps.prescreen import (
    LanguagePrescreen,
    LanguagePrescreenConfig,
    audit_pick,
    chunks_of,
    visible_blocks,
)
from corpus_assets_tests.helpers import code_versions, latest, pipeline_run, sum_reasons

REPO_ROOT = Path(__file__).resolve().parent.parent
ON = LanguagePrescreenConfig(enabled=True, audit_fraction=0.0)
ENGLISH_ONLY = LanguageIdConfig(languages=("en",))

GERMAN_CHROME = [
    "Startseite", "Über uns", "Kontakt", "Impressum", "Datenschutzerklärung",
    "Unsere Ferienhäuser an der Küste bieten Ihnen Ruhe und Erholung für die ganze Familie.",
    "Jetzt buchen und bis zu zwanzig Prozent sparen, solange der Vorrat reicht.",
    "Alle Preise verstehen sich inklusive Mehrwertsteuer und zuzüglich Versandkosten.",
    "Wir verwenden Cookies, um Ihnen das beste Nutzererlebnis auf unserer Website zu bieten.",
    "Melden Sie sich für unseren Newsletter an und erhalten Sie regelmäßig neue Angebote.",
    "Häufig gestellte Fragen zu Anreise, Abreise, Haustieren und Stornierungsbedingungen.",
    "Öffnungszeiten: Montag bis Freitag von neun bis achtzehn Uhr, samstags nach Vereinbarung.",
]
ENGLISH_ARTICLE = [
    "The villa sits on a quiet hill above the bay, a short walk from the old harbour and its"
    " fish restaurants.",
    "Each of the four bedrooms has its own bathroom, and the living room opens onto a terrace"
    " with a view over the water.",
    "Guests can borrow bicycles and kayaks at no charge, and the owners are happy to arrange"
    " boat trips to the islands.",
]
RECIPE_LINES = [
    "Two cups of flour", "One teaspoon of salt", "Three large eggs", "A cup of warm milk",
    "Butter for the pan", "A pinch of sugar", "Fresh berries to serve", "Maple syrup on top",
    "Whisk the eggs well", "Fold in the flour", "Rest for ten minutes", "Fry until golden",
]


def page(*blocks: str, tag: str = "p", head: str = "") -> str:
    body = "".join(f"<{tag}>{b}</{tag}>" for b in blocks)
    return f"<html><head><title>t</title>{head}</head><body>{body}</body></html>"


def prescreen(config: LanguagePrescreenConfig = ON) -> LanguagePrescreen:
    return LanguagePrescreen(config, ENGLISH_ONLY)


def test_visible_blocks_drop_scripts_styles_and_head():
    html = page("Visible one", "Visible <a href='#'>two</a> words",
                head="<style>p { color: red }</style><script>var hidden = 1;</script>")
    html = html.replace("</body>", "<script>alert('no')</script><noscript>nope</noscript></body>")
    text = " ".join(visible_blocks(html))
    assert "Visible one" in text and "two" in text
    for hidden in ("color", "hidden", "alert", "nope", "<"):
        assert hidden not in text


def test_chunks_join_short_blocks_until_long_enough():
    chunks = list(chunks_of(["a b", "c d", "e", "f g h i j", "k"], 5))
    assert chunks == [("a b c d e", 5), ("f g h i j", 5), ("k", 1)]


def test_english_page_passes_and_german_page_is_removed_with_its_language():
    step = prescreen()
    english = {"doc_id": "e", "html": page(*ENGLISH_ARTICLE)}
    german = {"doc_id": "g", "html": page(*GERMAN_CHROME)}
    assert step.apply(english) is None
    assert english["prescreen_words"] >= ON.min_selected_words
    reason, detail = step.apply(german)
    assert reason == "few_selected_language_words"
    assert detail.startswith("0 words") and detail.endswith("de")


def test_english_article_on_a_german_site_passes_though_the_page_reads_as_german():
    # The case judging chunks exists for: as a whole the visible text is German.
    html = page(*GERMAN_CHROME[:5], *ENGLISH_ARTICLE, *GERMAN_CHROME[5:], *GERMAN_CHROME)
    whole_page = LanguageId(ENGLISH_ONLY).predict(" ".join(visible_blocks(html)))
    assert whole_page[0] == "de"
    assert prescreen().apply({"doc_id": "x", "html": html}) is None


def test_short_english_lines_are_joined_into_english_chunks():
    html = page(*RECIPE_LINES, tag="li")
    assert all(len(line.split()) < ON.chunk_words for line in RECIPE_LINES)
    assert prescreen().apply({"doc_id": "r", "html": html}) is None


def test_other_selected_languages_count():
    step = LanguagePrescreen(ON, LanguageIdConfig(languages=("de", "fr")))
    assert step.apply({"doc_id": "g", "html": page(*GERMAN_CHROME)}) is None
    assert step.apply({"doc_id": "e", "html": page(*ENGLISH_ARTICLE)})[0] == "few_selected_language_words"


def test_pages_without_visible_text_go_on_to_extraction_which_names_them():
    steps = [prescreen(), Extract()]
    removed = []
    script_only = "<html><head><title>Cart</title></head><body><script>var cart = [];</script></body></html>"
    docs = [{"doc_id": "empty", "html": ""}, {"doc_id": "script", "html": script_only}]
    stream, stats = run_steps(steps, docs, lambda d, s, r, _: removed.append((s, r)))
    assert list(stream) == []
    assert removed == [("extraction", "no_main_text")] * 2


def test_unparsable_or_binary_pages_never_crash_and_fail_open(monkeypatch):
    step = prescreen()
    junk = {"doc_id": "j", "html": "\x00\ufffd<<<>>><p \udcff zz" * 500}
    verdict = step.apply(junk)  # lone surrogates, NULs, broken tags: a verdict, not an exception
    assert verdict is None or verdict[0] == "few_selected_language_words"
    assert junk["prescreen_words"] >= 0
    import corpus_assets.steps.prescreen as module

    def broken(html):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(module, "visible_blocks", broken)
    doc = {"doc_id": "x", "html": page(*GERMAN_CHROME)}
    assert step.apply(doc) is None  # passed on: extraction and language ID decide as without the step
    assert doc["prescreen_words"] == -1


def test_audit_passes_a_deterministic_share_of_would_be_removals_tagged():
    ids = [f"doc-{i}" for i in range(20000)]
    picked = [i for i in ids if audit_pick(i, 0.02)]
    assert 300 <= len(picked) <= 500  # 2 % of 20000 = 400
    assert picked == [i for i in ids if audit_pick(i, 0.02)]  # same ids every time
    assert not any(audit_pick(i, 0.0) for i in ids[:1000])

    step = prescreen(LanguagePrescreenConfig(enabled=True, audit_fraction=1.0))
    doc = {"doc_id": "g", "html": page(*GERMAN_CHROME)}
    assert step.apply(doc) is None
    assert doc["prescreen_audit"] is True and step.audit_sampled == 1
    english = {"doc_id": "e", "html": page(*ENGLISH_ARTICLE)}
    assert step.apply(english) is None and english["prescreen_audit"] is False
    assert step.audit_sampled == 1


def test_settings_are_checked():
    with pytest.raises(ValueError, match="keeps every language"):
        LanguagePrescreen(ON, LanguageIdConfig(languages=()))
    with pytest.raises(ValueError, match="audit_fraction"):
        LanguagePrescreen(LanguagePrescreenConfig(audit_fraction=1.5), ENGLISH_ONLY)


def _config_file(tmp_path: Path, **prescreen_settings) -> Path:
    sample = yaml.safe_load((REPO_ROOT / "configs" / "sample.yaml").read_text())
    blocklist = (REPO_ROOT / "configs" / sample["url_filter"]["blocklist_dir"]).resolve()
    # Paths must exist at load; without ../shared/data the version test runs unblocked.
    sample["url_filter"]["blocklist_dir"] = str(blocklist) if blocklist.is_dir() else None
    sample["language_prescreen"] = prescreen_settings
    path = tmp_path / "prescreen.yaml"
    path.write_text(yaml.safe_dump(sample))
    return path


def test_rw_raw_code_version_changes_with_prescreen_settings_only_when_enabled(tmp_path):
    from corpus_assets.definitions import build_definitions

    def rw_raw_version(**settings) -> str:
        config = load_config(_config_file(tmp_path, **settings))
        defs = build_definitions(config=config, corpus_root=str(tmp_path / "c"), crawl_root=str(tmp_path))
        versions = code_versions(defs)
        return versions["rw_raw"]

    off = rw_raw_version(enabled=False)
    assert rw_raw_version(enabled=False, chunk_words=30) == off  # off: its settings change nothing
    on = rw_raw_version(enabled=True)
    assert on != off
    assert rw_raw_version() == on  # on by default
    assert rw_raw_version(enabled=True, chunk_words=30) != on


def test_sample_with_prescreen_keeps_exactly_what_full_extraction_keeps(sample_run, sample_crawl, tmp_path):
    """The session's sample run has the pre-screen on (the default): most pages skip
    extraction, and rw_raw and rw_filtered keep the very same documents as a run that
    extracts every page."""
    from corpus_assets.partitions import shard_keys
    from corpus_assets.stages import documents_path

    dumps = ["CC-MAIN-2024-10", "CC-MAIN-2024-18"]
    n = sample_run.config.num_shards
    assert sample_run.config.language_prescreen.enabled

    def kept(store, asset):
        return {(dump, row["doc_id"]) for dump in dumps for shard in shard_keys(n)
                for row in store.iter_rows(documents_path(asset, dump, shard), columns=["doc_id"])}

    with pipeline_run(_config_file(tmp_path, enabled=False), sample_crawl,
                      tmp_path / "corpus", dumps, dedup=False) as (defs, instance, config, store):
        assert not config.language_prescreen.enabled
        for asset in ("rw_raw", "rw_filtered"):
            assert kept(store, asset) == kept(sample_run.store, asset), asset
        sampled = total_removed = 0
        for dump in dumps:
            full = sum_reasons(instance, "rw_raw", dump, n)
            with_prescreen = sum_reasons(sample_run.instance, "rw_raw", dump, n)
            assert ("language_prescreen", "few_selected_language_words") not in full
            skipped = with_prescreen[("language_prescreen", "few_selected_language_words")]
            not_selected = full[("language_id", "language_not_selected")]
            # Most of what language ID removes never reaches trafilatura.
            assert skipped > 0.6 * not_selected, (skipped, not_selected)
            removed = 0
            for shard in shard_keys(n):
                meta = latest(sample_run.instance, "rw_raw", f"{dump}|{shard}")
                steps = [r.data["step"] for r in meta["funnel"].records]
                assert steps == ["url_filter", "html_guard", "language_prescreen", "extraction", "language_id"]
                assert meta["prescreen_audit_kept"] == 0  # no audited page was English
                assert meta["prescreen_estimated_lost"] == 0.0
                sampled += meta["prescreen_audit_sampled"]
                removed += meta["prescreen_removed"]
            assert removed == skipped
            total_removed += removed
        # 2 % of the would-be removals went on to extraction for the audit.
        assert 0 < sampled < 0.1 * (sampled + total_removed)

    # The demo's table shows the audit beside the pre-screen's removals.
    from corpus_assets.demo import retention_table

    rows = [r for r in retention_table(sample_run.instance, dumps, shard_keys(n)) if r["step"] == "language_prescreen"]
    assert len(rows) == 2
    assert all(r["note"].startswith("(audit: language ID kept 0 of ") for r in rows)
    assert sum(int(r["note"].split(" of ")[1].split()[0]) for r in rows) == sampled
