"""One function per artifact: read the upstream partition, run the steps, write the result.

These are what the Dagster assets call, and what a script or a test can call without
Dagster. Each document stage writes, under ``<asset>/<dump>/<shard>/``:

- ``documents.parquet``: the documents kept, with every column the steps added;
- ``removed.parquet``: one row per removed document (doc_id, url, step, reason, detail,
  and the WARC coordinates that lead back to the raw record);
- ``stats.json``: per-step counts.

The three are published as one version of the partition (``CorpusStore.publish_partition``):
a reader sees all three of the old run or all three of the new one, and ``load_report``
refuses stats that disagree with the tables' row counts.

Documents stream through in batches; no stage holds a whole shard in memory.
"""

from __future__ import annotations

import time
import typing
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import pyarrow as pa

from corpus_assets.config import PipelineConfig
from corpus_assets.crawl import CrawlSource, CrawlSourceError, assign_shards, shard_key
from corpus_assets.steps.base import Document, Step, StepErrorPolicy, StepStats, check_step_errors, run_steps
from corpus_assets.steps.extraction import Extract
from corpus_assets.steps.html_guard import HtmlGuard
from corpus_assets.steps.langid import LanguageId
from corpus_assets.steps.prescreen import LanguagePrescreen
from corpus_assets.steps.progress import ProgressLog, progress_for
from corpus_assets.steps.quality.decisions import build_decision_steps
from corpus_assets.steps.segmentation.profiles import prescreen_segmenter, profiles_for
from corpus_assets.steps.quality.signals import SIGNAL_COLUMNS, QualitySignals
from corpus_assets.steps.url_allowlist import UrlAllowlist
from corpus_assets.steps.url_filter import UrlFilter
from corpus_assets.steps.warc import RESPONSE_FIELDS, HtmlDecode, iter_warc_responses
from corpus_assets.storage import CorpusStore, PartitionIntegrityError, publishes

REMOVED_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("url", pa.string()),
        ("step", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("dump", pa.string()),
        ("shard", pa.string()),
        ("warc_path", pa.string()),
        ("warc_offset", pa.int64()),
        ("warc_record_id", pa.string()),
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [("warc_path", pa.string()), ("shard", pa.string()), ("bytes", pa.int64())]
)

# Columns that follow a document from the raw record to the training shard, so any
# document can be traced back to its WARC record.
LINEAGE_COLUMNS = ["doc_id", "url", "dump", "shard", "warc_path", "warc_offset", "warc_record_id", "warc_date"]


# The WARC reader's records as the raw_documents stage receives them (every field the
# reader yields, then the dump and shard the ingest adds): the upstream schema of the one
# stage whose input is not a stored table.
RECORD_COLUMNS = {**{name: type(value) for name, value in RESPONSE_FIELDS.items()}, "dump": str, "shard": str}
DECLARED_INPUTS = {"raw_documents": RECORD_COLUMNS}

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(), bytes: pa.binary()}


def arrow_type(declared) -> pa.DataType:
    """The Arrow type ``pa.Table.from_pylist`` infers for values of a declared Python type."""
    if isinstance(declared, pa.DataType):
        return declared
    if typing.get_origin(declared) is list:
        return pa.list_(arrow_type(typing.get_args(declared)[0]))
    return _ARROW_TYPES[declared]


def _declared_schema(columns: dict) -> pa.Schema:
    return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in columns.items()])


def empty_documents_schema(documents: Iterable[Document], drop_columns: Iterable[str] = (),
                           steps: Iterable[Step] = (), asset: Optional[str] = None) -> pa.Schema:
    """The schema of a documents table that kept no row and has no declared schema: what
    a kept document would have had. The upstream table's columns (known once
    ``documents``, a ``RowStream``, was read; for raw_documents the reader's declared
    record columns), then each step's ``dropped_columns`` removed and ``output_columns``
    appended, in the order a document's fields would be, then ``drop_columns`` removed;
    any lineage column still missing is added. A table without these columns would break
    every dataset scan that meets it first (``No match for FieldRef.Name(text)``)."""
    upstream = getattr(documents, "schema", None)
    if upstream is None and asset in DECLARED_INPUTS:
        upstream = _declared_schema(DECLARED_INPUTS[asset])
    fields = list(upstream) if upstream is not None else []
    for step in steps:
        gone = set(getattr(step, "dropped_columns", ()))
        present = {f.name for f in fields}
        added = [pa.field(n, arrow_type(k)) for n, k in getattr(step, "output_columns", {}).items() if n not in present]
        fields = [f for f in fields if f.name not in gone] + [f for f in added if f.name not in gone]
    dropped = set(drop_columns)
    fields = [f for f in fields if f.name not in dropped]
    present = {f.name for f in fields}
    fields += [pa.field(c, REMOVED_SCHEMA.field(c).type if c in REMOVED_SCHEMA.names else pa.string())
               for c in LINEAGE_COLUMNS if c not in present]
    return pa.schema(fields)


def documents_path(asset: str, dump: str, shard: str) -> str:
    return f"{asset}/{dump}/{shard}/documents.parquet"


def removed_path(asset: str, dump: str, shard: str) -> str:
    return f"{asset}/{dump}/{shard}/removed.parquet"


def stats_path(asset: str, dump: str, shard: str) -> str:
    return f"{asset}/{dump}/{shard}/stats.json"


def manifest_table_path(dump: str) -> str:
    return f"crawl_manifest/{dump}/manifest.parquet"


@dataclass
class StageReport:
    """What one stage did to one partition; saved as ``stats.json``."""

    asset: str
    dump: str
    shard: str
    steps: list[dict]
    # HTML 200 responses of this partition in raw_documents: the base of cumulative retention.
    baseline_docs: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def step_stats(self) -> list[StepStats]:
        return [StepStats.from_dict(s) for s in self.steps]

    @property
    def docs_in(self) -> int:
        return self.steps[0]["docs_in"] if self.steps else 0

    @property
    def docs_out(self) -> int:
        return self.steps[-1]["docs_out"] if self.steps else 0

    @property
    def chars_in(self) -> int:
        return self.steps[0]["chars_in"] if self.steps else 0

    @property
    def chars_out(self) -> int:
        return self.steps[-1]["chars_out"] if self.steps else 0

    @property
    def docs_removed(self) -> int:
        return sum(s.docs_removed for s in self.step_stats)

    def removed_by_reason(self) -> list[tuple[str, str, int]]:
        """(step, reason, count), in step order then by count."""
        rows = []
        for s in self.step_stats:
            rows.extend(
                (s.step, reason, n)
                for reason, n in sorted(s.removed_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
            )
        return rows

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageReport":
        return cls(**d)


def load_report(store: CorpusStore, asset: str, dump: str, shard: str) -> StageReport:
    """The partition's ``stats.json``, refused when its figures contradict the row counts
    its partition's pointer records for the two tables (the check costs no table read)."""
    rel = stats_path(asset, dump, shard)
    if not store.exists(rel):
        raise FileNotFoundError(
            f"{asset} has not been materialized for {dump}|{shard} ({store.uri(rel)} is missing)"
        )
    report = StageReport.from_dict(store.read_json(rel))
    kept = store.published_rows(documents_path(asset, dump, shard))
    removed = store.published_rows(removed_path(asset, dump, shard))
    problems = []
    # A report without steps says docs_out=0 whatever it kept: no figure to compare.
    if kept is not None and report.steps and report.docs_out != kept:
        problems.append(f"docs_out={report.docs_out} but documents.parquet holds {kept} rows")
    if removed is not None and report.docs_removed != removed:
        problems.append(f"docs_removed={report.docs_removed} but removed.parquet holds {removed} rows")
    if problems:
        raise PartitionIntegrityError(
            f"{asset} {dump}|{shard} contradicts itself: stats.json says {'; '.join(problems)}; "
            "re-materialize the partition"
        )
    return report


# The three files are published as one version: an exception anywhere leaves the old partition.
@publishes("{asset}/{dump}/{shard}")
def run_document_stage(
    store: CorpusStore,
    asset: str,
    dump: str,
    shard: str,
    documents: Iterable[Document],
    steps: list[Step],
    baseline_docs: Optional[int] = None,
    schema: Optional[pa.Schema] = None,
    extra: Optional[dict] = None,
    on_kept: Optional[Callable[[Document], None]] = None,
    extra_after_run: Optional[Callable[[list[StepStats]], dict]] = None,
    step_errors: Optional[StepErrorPolicy] = None,
    drop_columns: Iterable[str] = (),
    progress: Optional[ProgressLog] = None,
) -> StageReport:
    """Stream ``documents`` through ``steps`` and write the partition's three files.
    ``progress`` (a ``ProgressLog``) is ticked once per document, kept or removed.
    ``on_kept`` sees every kept document before it is written, and ``extra_after_run``
    turns the finished step counts into more report entries (stage-level figures that
    are only known once the stream has ended). A document a step raises on is removed as
    ``step_error``; past ``step_errors`` (default ``StepErrorPolicy()``) the stage raises
    before any file is published. ``drop_columns`` are left out of the kept table (and of
    its schema when it is empty): columns that served this stage and stay upstream."""
    started = time.perf_counter()
    try:
        with store.table_writer(removed_path(asset, dump, shard), REMOVED_SCHEMA) as removed, \
                store.table_writer(documents_path(asset, dump, shard), schema) as kept:

            def on_removed(doc: Document, step: str, reason: str, detail: str) -> None:
                removed.write(
                    {
                        "doc_id": doc.get("doc_id", ""),
                        "url": doc.get("url", ""),
                        "step": step,
                        "reason": reason,
                        "detail": str(detail)[:500],
                        "dump": dump,
                        "shard": shard,
                        "warc_path": doc.get("warc_path", ""),
                        "warc_offset": int(doc.get("warc_offset", -1)),
                        "warc_record_id": doc.get("warc_record_id", ""),
                    }
                )
                if progress is not None:
                    progress.tick(kept=False)

            stream, stats = run_steps(steps, documents, on_removed)
            drop_columns = tuple(drop_columns)
            for doc in stream:
                if on_kept is not None:
                    on_kept(doc)
                for column in drop_columns:
                    doc.pop(column, None)
                kept.write(doc)
                if progress is not None:
                    progress.tick(kept=True)
            check_step_errors(stats, step_errors or StepErrorPolicy(), f"{asset} {dump}|{shard}")
            kept.empty_schema = empty_documents_schema(documents, drop_columns, steps, asset)
    finally:
        for step in steps:
            step.close()
    for s in stats:
        problem = s.check()
        if problem:  # cannot happen through run_steps; guard against future edits
            raise AssertionError(problem)
    report = StageReport(
        asset=asset,
        dump=dump,
        shard=shard,
        steps=[s.to_dict() for s in stats],
        baseline_docs=stats[-1].docs_out if baseline_docs is None else baseline_docs,
        seconds=round(time.perf_counter() - started, 3),
        extra={**(extra or {}), **(extra_after_run(stats) if extra_after_run else {})},
    )
    store.write_json(stats_path(asset, dump, shard), report.to_dict())
    if progress is not None:
        progress.finish()
    return report


# -- crawl_manifest -------------------------------------------------------------------

@publishes("crawl_manifest/{dump}")
def build_crawl_manifest(source: CrawlSource, store: CorpusStore, dump: str, num_shards: int) -> pa.Table:
    """The dump's files with their shards. An empty manifest raises (CrawlSourceError);
    a path outside the crawl root is kept (raw_documents counts it as a removal) but
    not even looked at here (bytes -1)."""
    paths = source.read_manifest(dump)
    shards = assign_shards(paths, num_shards)
    rows = []
    for path, shard in zip(paths, shards):
        size = source.size(path) if source.kind != "http" else None
        rows.append({"warc_path": path, "shard": shard_key(shard, num_shards), "bytes": -1 if size is None else size})
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    with store.table_writer(manifest_table_path(dump), MANIFEST_SCHEMA) as writer:
        writer.write_many(rows)
    return table


# -- raw_documents --------------------------------------------------------------------

# How many of the files that yielded no document at all the stats name.
_FILES_WITHOUT_RESPONSES_SAMPLE = 20


def manifest_duplicates(source: CrawlSource, paths: list[str]) -> list[Optional[int]]:
    """For each manifest entry, the index of an earlier entry naming the same file (the
    same path twice, ``./p``, ``a/../p``, an in-root symlink to ``p``), else None. A pure
    function of the whole manifest and the files, so every shard agrees on which entry
    is read. The entry read is the first one that is not refused (an absolute path may
    name the same file, and is never opened); a refused entry is removed for its own
    problem first, whatever this says."""
    identities = source.identities(paths)
    repeated = Counter(identities)
    keeper: dict[str, int] = {}
    out: list[Optional[int]] = [None] * len(paths)
    for i, identity in enumerate(identities):
        if repeated[identity] < 2:
            continue
        if identity in keeper:
            out[i] = keeper[identity]
        elif not source.outside_root(paths[i]):  # looked at only for repeated files
            keeper[identity] = i
    return out


def _records_of_shard(source: CrawlSource, warc_paths: list[str], dump: str, shard: str,
                      record_counts: Optional[Counter] = None,
                      files_without_responses: Optional[list] = None,
                      duplicate_of: Optional[list[Optional[tuple[int, str]]]] = None) -> Iterator[Document]:
    """Every response of the shard's files, plus one error document per file that could
    not be read at all. ``record_counts`` collects records by WARC type and
    ``files_without_responses`` the files that gave no document (a WET file, a
    resource-only WARC): their loss is otherwise invisible, as nothing is removed.
    ``duplicate_of`` (aligned with ``warc_paths``): (manifest index, path) of the entry
    already naming the same file; such an entry is one ``duplicate_manifest_entry`` row
    and is not read again (its records would come back under new doc_ids and dedup
    would then count real pages as copies of themselves)."""
    for i, warc_path in enumerate(warc_paths):
        def unread(kind: str, error: str) -> Document:
            return {"doc_id": f"{kind}:{i}:{warc_path}", "url": "", "warc_path": warc_path,
                    "warc_offset": -1, "warc_record_id": "", "read_error": error, "dump": dump, "shard": shard}

        problem = source.path_problem(warc_path)
        if problem:
            # A manifest path escaping the root (../../x, /etc/passwd), or one that does not
            # resolve (a symlink loop): never opened.
            yield unread("outside", f"{problem[0]}: {problem[1]}")
            continue
        earlier = duplicate_of[i] if duplicate_of else None
        if earlier is not None:
            yield unread("duplicate", f"duplicate_manifest_entry: the file of manifest entry {earlier[0] + 1} "
                                      f"({earlier[1][:300]}), read there")
            continue
        try:
            stream = source.open(warc_path)
        except CrawlSourceError as exc:
            # A file named in the manifest but absent (or a folder, a FIFO): one counted
            # unit, never a crash.
            yield unread("missing", f"{exc.code}: {exc}")
            continue
        yielded = 0
        with stream:
            for record in iter_warc_responses(stream, warc_path, record_counts=record_counts):
                record["dump"] = dump
                record["shard"] = shard
                yielded += 1
                yield record
        if not yielded and files_without_responses is not None:
            files_without_responses.append(warc_path)


def ingest_raw_documents(
    source: CrawlSource, store: CorpusStore, dump: str, shard: str, config: PipelineConfig, log=None
) -> StageReport:
    manifest_rel = manifest_table_path(dump)
    if not store.exists(manifest_rel):
        raise FileNotFoundError(
            f"crawl_manifest has not been materialized for {dump} ({store.uri(manifest_rel)} is missing)"
        )
    manifest = store.read_table(manifest_rel).to_pylist()
    all_paths = [row["warc_path"] for row in manifest]
    earlier = manifest_duplicates(source, all_paths)
    mine = [i for i, row in enumerate(manifest) if row["shard"] == shard]
    warc_paths = [all_paths[i] for i in mine]
    duplicate_of = [None if earlier[i] is None else (earlier[i], all_paths[earlier[i]]) for i in mine]
    record_counts: Counter = Counter()
    files_without_responses: list[str] = []
    return run_document_stage(
        store, "raw_documents", dump, shard,
        _records_of_shard(source, warc_paths, dump, shard, record_counts, files_without_responses, duplicate_of),
        [HtmlDecode(config.html_decode)],
        extra={"warc_files": len(warc_paths)},
        extra_after_run=lambda stats: {
            "records_by_type": dict(sorted(record_counts.items())),
            "warc_files_without_responses": len(files_without_responses),
            "warc_files_without_responses_sample": files_without_responses[:_FILES_WITHOUT_RESPONSES_SAMPLE],
        },
        step_errors=config.step_errors,
        progress=progress_for(log, f"raw_documents {dump}|{shard}", config.progress),
    )


# -- rw_raw ---------------------------------------------------------------------------

def build_rw_raw(store: CorpusStore, dump: str, shard: str, config: PipelineConfig, log=None) -> StageReport:
    raw = load_report(store, "raw_documents", dump, shard)
    prescreen = None
    if config.language_prescreen.enabled and config.language_id.languages:
        prescreen = LanguagePrescreen(config.language_prescreen, config.language_id,
                                      prescreen_segmenter(profiles_for(config)))
    steps = [
        UrlFilter(config.url_filter),
        # WebText-style: only listed URLs go on (when url_allowlist.path is set)
        *([UrlAllowlist(config.url_allowlist)] if config.url_allowlist.path else []),
        HtmlGuard(config.html_guard),  # before anything parses the HTML
        *([prescreen] if prescreen else []),
        Extract(config.extraction),
        LanguageId(config.language_id),
    ]
    audit_kept = 0

    def count_audit(doc: Document) -> None:
        nonlocal audit_kept
        audit_kept += bool(doc.get("prescreen_audit"))

    return run_document_stage(
        store, "rw_raw", dump, shard,
        store.iter_rows(documents_path("raw_documents", dump, shard)),
        steps,
        baseline_docs=raw.docs_out,
        on_kept=count_audit if prescreen else None,
        extra_after_run=(lambda stats: prescreen_audit_figures(stats, prescreen.audit_sampled, audit_kept))
        if prescreen else None,
        step_errors=config.step_errors,
        progress=progress_for(log, f"rw_raw {dump}|{shard}", config.progress),
    )


def prescreen_audit_figures(stats: list[StepStats], sampled: int, kept: int) -> dict:
    """The language pre-screen's measured loss on one partition.

    The pre-screen passes a deterministic sample of the pages it would remove on to
    extraction and language ID (``prescreen_audit``); the share of them that language ID
    keeps, times the pages the pre-screen did remove, estimates how many pages in a
    selected language the pre-screen cost this partition."""
    removed = next((s.docs_removed for s in stats if s.step == LanguagePrescreen.name), 0)
    return {
        "prescreen_removed": removed,
        "prescreen_audit_sampled": sampled,
        "prescreen_audit_kept": kept,
        "prescreen_estimated_lost": round(removed * kept / sampled, 2) if sampled else 0.0,
    }


# -- rw_quality_signals and rw_filtered ------------------------------------------------

def build_quality_signals(store: CorpusStore, dump: str, shard: str, config: PipelineConfig, log=None) -> StageReport:
    """Annotate every RW-RAW document with its quality signals; removes nothing."""
    upstream = load_report(store, "rw_raw", dump, shard)
    return run_document_stage(
        store, "rw_quality_signals", dump, shard,
        store.iter_rows(documents_path("rw_raw", dump, shard)),
        [QualitySignals(config.quality_signals, profiles_for(config))],
        baseline_docs=upstream.baseline_docs,
        step_errors=config.step_errors,
        progress=progress_for(log, f"rw_quality_signals {dump}|{shard}", config.progress),
    )


def build_rw_filtered(store: CorpusStore, dump: str, shard: str, config: PipelineConfig, log=None) -> StageReport:
    """Decide keep/drop from the stored signals; no signal is recomputed here."""
    from corpus_assets.classifier_stages import gpt3_decision_steps  # it imports this module

    upstream = load_report(store, "rw_quality_signals", dump, shard)
    return run_document_stage(
        store, "rw_filtered", dump, shard,
        store.iter_rows(documents_path("rw_quality_signals", dump, shard)),
        # GPT-3's classifier (when on) after the presets: it filtered before fuzzy dedup
        build_decision_steps(config.quality_thresholds, config.quality_signals, profiles_for(config))
        + gpt3_decision_steps(store, dump, config),
        baseline_docs=upstream.baseline_docs,
        # After the decisions a document has one text (``text``, line-corrected) and no
        # signal columns: they served the decisions and stay in rw_quality_signals, which
        # ``doc_id`` joins. (``rw_corrected_text`` was a second copy of the text.)
        drop_columns=SIGNAL_COLUMNS,
        step_errors=config.step_errors,
        progress=progress_for(log, f"rw_filtered {dump}|{shard}", config.progress),
    )


# -- the conservation law, checked from what was written ------------------------------

def verify_conservation(store: CorpusStore, asset: str, dump: str, shard: str,
                        upstream_asset: Optional[str]) -> tuple[bool, dict]:
    """Recount from the stored files, independently of the counters that made them.

    docs_in is the upstream table's row count (for raw_documents, the records the reader
    saw, from its stats); docs_out and docs_removed are the row counts of this partition's
    ``documents.parquet`` and ``removed.parquet``; the removal reasons are recounted from
    the ledger and compared with the stats.
    """
    report = load_report(store, asset, dump, shard)
    docs_out = store.row_count(documents_path(asset, dump, shard))
    ledger = store.read_table(removed_path(asset, dump, shard), columns=["step", "reason"]).to_pylist()
    docs_removed = len(ledger)
    if upstream_asset is None:
        docs_in = report.docs_in
    else:
        docs_in = store.row_count(documents_path(upstream_asset, dump, shard))
    recounted: dict[tuple[str, str], int] = {}
    for row in ledger:
        key = (row["step"], row["reason"])
        recounted[key] = recounted.get(key, 0) + 1
    reported = {(step, reason): n for step, reason, n in report.removed_by_reason()}
    facts = {
        "docs_in": docs_in,
        "docs_out": docs_out,
        "docs_removed": docs_removed,
        "reasons_sum": sum(reported.values()),
        "reasons_match_ledger": recounted == reported,
    }
    passed = (
        docs_in == docs_out + docs_removed
        and sum(reported.values()) == docs_removed
        and recounted == reported
        and report.docs_in == docs_in
        and report.docs_out == docs_out
    )
    return passed, facts
