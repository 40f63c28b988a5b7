"""Run one language's pipeline over WARC files in memory and account for every page.

The steps are the shard stages' own (``stages.build_rw_raw``'s URL filter, HTML guard,
language pre-screen, extraction and language ID; the quality signals and decisions of
``rw_quality_signals`` / ``rw_filtered``), then the dump-level dedup done over the given
files as one dump: MinHash LSH (the settings' preset, candidates joined by union-find,
the first document of a cluster kept), exact substring dedup (spans of
``dedup.exact_min_tokens`` tokens, cut) and URL repeats. Each language's segmenter,
stop words and thresholds come from its profile (``steps/segmentation/profiles``), as
in the assets. Used by ``benchmarks/languages_real_warc.py`` and the tests; no Dagster.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from corpus_assets.config import PipelineConfig
from corpus_assets.steps.base import Document, StepStats, run_steps
from corpus_assets.steps.dedup.exact_substring import ExactSubstringStep, find_duplicate_token_spans
from corpus_assets.steps.dedup.minhash import get_minhasher, get_preset
from corpus_assets.steps.dedup.urls import UrlDedupStep
from corpus_assets.steps.extraction import Extract
from corpus_assets.steps.html_guard import HtmlGuard
from corpus_assets.steps.langid import LanguageId
from corpus_assets.steps.prescreen import LanguagePrescreen
from corpus_assets.steps.quality.decisions import build_decision_steps
from corpus_assets.steps.quality.line_corrections import normalize_language
from corpus_assets.steps.quality.signals import QualitySignals
from corpus_assets.steps.segmentation.profiles import prescreen_segmenter, profiles_for
from corpus_assets.steps.url_filter import UrlFilter
from corpus_assets.steps.warc import HtmlDecode, iter_warc_responses


@dataclass
class PageOutcome:
    url: str
    step: str = ""  # "" = kept to the end
    reason: str = ""
    detail: str = ""
    language: str = ""
    words: int = 0  # gopher_word_count (segmenter words), when signals were computed
    text: str = ""  # the text when it was removed (or kept), for reading


@dataclass
class LanguageRun:
    language: str
    steps: list[StepStats] = field(default_factory=list)
    pages: list[PageOutcome] = field(default_factory=list)

    @property
    def kept(self) -> list[PageOutcome]:
        return [p for p in self.pages if not p.step]

    def removed_by_reason(self) -> Counter:
        return Counter((p.step, p.reason) for p in self.pages if p.step)


def with_languages(config: PipelineConfig, languages: tuple[str, ...]) -> PipelineConfig:
    """``config`` keeping ``languages`` in language ID (and so in the profiles' scope)."""
    return dataclasses.replace(config, language_id=dataclasses.replace(config.language_id, languages=tuple(languages)))


def _records(files: Iterable[Path]):
    for path in files:
        with open(path, "rb") as fh:
            yield from iter_warc_responses(fh, str(path))


def _stats(name: str, docs_in: int, removed: Counter) -> StepStats:
    stats = StepStats(name, docs_in=docs_in, docs_out=docs_in - sum(removed.values()))
    stats.removed_by_reason.update(removed)
    return stats


def run_language(files: Iterable[Path], config: PipelineConfig, language: Optional[str] = None) -> LanguageRun:
    """Every page of ``files`` through the pipeline with ``config`` (``language``: keep
    only that language, the ``languages: [<lang>]`` setting)."""
    if language:
        config = with_languages(config, (normalize_language(language),))
    profiles = profiles_for(config)
    run = LanguageRun(language or ",".join(config.language_id.languages))
    outcomes: dict[int, PageOutcome] = {}

    def removed(doc: Document, step: str, reason: str, detail: str) -> None:
        page = outcomes[id(doc)]
        page.step, page.reason, page.detail = step, reason, detail
        page.language = doc.get("language") or page.language
        page.words = int(doc.get("gopher_word_count") or 0)
        page.text = doc.get("text") or ""

    steps = [HtmlDecode(config.html_decode), UrlFilter(config.url_filter), HtmlGuard(config.html_guard)]
    if config.language_prescreen.enabled and config.language_id.languages:
        steps.append(LanguagePrescreen(config.language_prescreen, config.language_id, prescreen_segmenter(profiles)))
    steps += [Extract(config.extraction), LanguageId(config.language_id),
              QualitySignals(config.quality_signals, profiles),
              *build_decision_steps(config.quality_thresholds, config.quality_signals, profiles)]

    def tracked():
        for doc in _records(files):
            outcomes[id(doc)] = page = PageOutcome(url=doc.get("url") or "")
            run.pages.append(page)
            yield doc

    stream, run.steps = run_steps(steps, tracked(), removed)
    survivors = []
    for doc in stream:
        page = outcomes[id(doc)]
        page.language = doc.get("language") or ""
        page.words = int(doc.get("gopher_word_count") or 0)
        page.text = doc.get("text") or ""
        survivors.append((doc, page))
    survivors = _dedup(survivors, config, profiles, run)
    for doc, page in survivors:
        page.text = doc.get("text") or ""
    return run


def _dedup(survivors, config: PipelineConfig, profiles, run: LanguageRun):
    """MinHash, exact substring and URL dedup over the survivors as one dump."""
    segmenters = {lang: p.segmenter for lang, p in profiles.profiles.items() if p.segmenter_name != "whitespace"}

    def seg_of(doc):
        return segmenters.get(normalize_language(doc.get("language")))

    # MinHash LSH: documents sharing any band key are candidates; union-find; keep the first
    preset = get_preset(config.dedup.minhash_preset)
    hasher = get_minhasher(preset)
    docs = [d for d, _ in survivors]
    removed: Counter = Counter()
    if docs:
        keys = hasher.band_keys(hasher.signatures([d.get("text") or "" for d in docs], [seg_of(d) for d in docs]))
        parent = list(range(len(docs)))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for j in range(keys.shape[1]):
            first: dict[int, int] = {}
            for i, key in enumerate(keys[:, j].tolist()):
                if key in first:
                    a, b = find(i), find(first[key])
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                else:
                    first[key] = i
        kept = []
        for i, (doc, page) in enumerate(survivors):
            root = find(i)
            if root != i:
                page.step, page.reason = "minhash_dedup", "minhash_duplicate"
                page.detail = f"kept={survivors[root][1].url}"
                removed["minhash_duplicate"] += 1
            else:
                kept.append((doc, page))
        run.steps.append(_stats("minhash_dedup", len(survivors), removed))
        survivors = kept
    # exact substring (cut), spans counted in the language's tokens
    cfg = config.dedup
    if cfg.exact_substring and survivors:
        texts = [(d.get("text") or "", seg_of(d)) for d, _ in survivors]
        by_doc, _, _ = find_duplicate_token_spans(lambda: iter(texts), min_tokens=cfg.exact_min_tokens,
                                                  keep_first=cfg.exact_keep_first)
        spans = {d["doc_id"]: by_doc[i] for i, (d, _) in enumerate(survivors) if i in by_doc}
        step = ExactSubstringStep(spans, cfg.exact_mode, drop_fraction=cfg.exact_drop_fraction,
                                  spans_in_tokens=True, segmenter_of=seg_of)
        survivors = _apply(step, survivors, run)
    if cfg.url_dedup and survivors:
        survivors = _apply(UrlDedupStep(None, within_partition=True), survivors, run)
    return survivors


def _apply(step, survivors, run: LanguageRun):
    removed: Counter = Counter()
    kept = []
    for doc, page in survivors:
        result = step.apply(doc)
        if result is None:
            kept.append((doc, page))
        else:
            page.step, page.reason, page.detail = step.name, result[0], result[1]
            page.text = doc.get("text") or ""
            removed[result[0]] += 1
    run.steps.append(_stats(step.name, len(survivors), removed))
    return kept
