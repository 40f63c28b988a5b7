"""The training mixture as a stage function: what the ``training_mixture`` asset calls; no
Dagster here.

``build_training_mixture(store, name, config)`` for one mixture spec:

1. Read every source's inputs ("units": one upstream file each, with its data version) and
   their token counts. Counts are an attribute table per unit and tokenizer,
   ``mixture_token_counts/<tokenizer>/<unit>/<key>/token_counts.parquet`` (doc_id,
   token_count), written the first time and joined by doc_id afterwards: changing weights
   or the budget never re-tokenizes. ``<key>`` hashes everything that decides the counts
   and their doc ids: the unit's data version, its reader settings (a JSONL source's text
   fields and id field) and the counting revision; so new upstream data or a changed
   reader setting is counted afresh, never joined to another reading's counts.
2. Plan: tokens asked of each source (weight x budget, or temperature sampling), full
   epochs and a seeded sample of documents for the remainder (``steps/mixture/plan.py``);
   over the epoch cap is an error naming the source.
3. Write: the sources streamed in a seeded interleave, cut into shards of about
   ``mixture.shard_tokens`` tokens, each shuffled and written as ``shard-NNNNN.parquet``
   and ``shard-NNNNN.jsonl.zst`` (their row ids streamed to ``row_ids.parquet``), then
   ``manifest.json``; all under ``training_mixture/<mixture>/``, published as one
   partition, and only when every unit's data version is still the one counted.

Documents in = kept + removed per source: an empty text or a doc id seen twice in a source
is a counted removal in the manifest, never silent.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import pyarrow as pa

from corpus_assets import selection_stages
from corpus_assets.config import PipelineConfig
from corpus_assets.steps.base import file_sha256
from corpus_assets.steps.mixture import plan as planning
from corpus_assets.steps.mixture import shards as shard_io
from corpus_assets.steps.mixture.config import MixtureSourceSpec, MixtureSpec, check_spec_inputs
from corpus_assets.steps.mixture.tokens import TokenCounter, TokenCountError
from corpus_assets.storage import CorpusStore

MIXTURE = "training_mixture"
TOKEN_COUNTS = "mixture_token_counts"
RW = "rw_deduped"
COUNTS_SCHEMA = pa.schema([("doc_id", pa.string()), ("token_count", pa.int64())])
EMPTY_TEXT, DUPLICATE_ID = "empty_text", "duplicate_doc_id"
MISSING_UPSTREAM = "not_in_rw_deduped"  # a domain subset's doc id its rw_deduped shard lacks
# What the count tables mean beyond the unit and tokenizer; a change here re-counts every
# unit. 2: keyed by the reader settings too; special-token text counted as plain text by
# both tokenizers (a tokenizer.json's added tokens used to count as one token).
COUNTS_REVISION = "2"


def folder(name: str) -> str:
    return f"{MIXTURE}/{name}"


def manifest_path(name: str) -> str:
    return f"{folder(name)}/manifest.json"


ROW_IDS = "row_ids.parquet"
ROW_IDS_SCHEMA = pa.schema([("shard", pa.int64()), ("id", pa.string())])


def shard_name(index: int, ext: str, width: int = 5) -> str:
    """``shard-00000.parquet``: zero-padded to ``width`` digits, at least 5 and enough for
    every shard of the build, so the names sort in shard order past shard 99,999."""
    return f"shard-{index:0{max(width, 5)}d}.{ext}"


def shard_width(planned_tokens: int, shard_tokens: int) -> int:
    """Digits for a build's shard numbers: every shard but the last has at least
    ``shard_tokens`` tokens, so there are at most planned // shard_tokens + 1."""
    return max(5, len(str(planned_tokens // max(shard_tokens, 1) + 1)))


def row_ids_path(name: str) -> str:
    return f"{folder(name)}/{ROW_IDS}"


def shard_row_ids(store: CorpusStore, name: str) -> list[list[str]]:
    """Per shard (in order), its row ids in row order, from the mixture's ``row_ids.parquet``
    (written shard by shard as the build runs: never all held in memory)."""
    table = store.read_table(row_ids_path(name))
    out: list[list[str]] = []
    for shard, row in zip(table.column("shard").to_pylist(), table.column("id").to_pylist()):
        while len(out) <= shard:
            out.append([])
        out[shard].append(row)
    return out


@dataclass
class Unit:
    """One upstream file a source reads: ``rows()`` yields dicts with doc_id, text, url,
    lineage_id, domain (doc ids unique within the source)."""

    key: str  # store-path-safe name: the token-count table's folder
    partition: str  # what the manifest shows
    version: str
    rows: Callable[[], Iterator[dict]]
    keep: Optional[set] = None  # only these doc ids (a domain subset of an rw_deduped shard)
    # What the unit's own reader dropped in its last pass (the JSONL reader skips
    # unparsable lines and empty texts itself): reported as removals, never lost.
    reader_removed: Counter = field(default_factory=Counter)
    # The reader settings that decide each document's text and doc id (a JSONL source's
    # fields and id_field): part of the token-count table's key.
    reader: str = ""
    # What the build pinned: (what, version read when the unit was made, how to read it
    # now). Checked after the shards are written: a source changed mid-build (a JSONL
    # refreshed, an rw_deduped partition re-published) fails the build, never ships new
    # texts with old counts under the old data version.
    checks: list = field(default_factory=list)
    # Every reader setting that shapes the rows (an external source's path, fields,
    # id_field and its domain labelling): in the manifest and the config hash.
    settings: dict = field(default_factory=dict)


class SourceChangedError(RuntimeError):
    """A source's data changed while one build read it (its counts and its texts would
    come from two versions)."""


def check_units_unchanged(units_of: dict[str, list["Unit"]]) -> None:
    """Every unit's pinned data versions re-read: SourceChangedError naming the first
    that differs."""
    for source, units in units_of.items():
        for unit in units:
            for what, recorded, now in unit.checks:
                current = now()
                if current != recorded:
                    raise SourceChangedError(
                        f"mixture source {source}: {what} changed while the mixture was built (data version "
                        f"{recorded} when counted, {current} now): build again once it stops changing")


def _digest(*parts) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def _file_sha(path: Path) -> str:
    return file_sha256(path)[:16]


def _partition_version(store: CorpusStore, part_folder: str, stats: str) -> str:
    version = store.partition_version(part_folder)
    return version or _digest(store.read_json(stats))


def _rw_shards(store: CorpusStore, partitions: tuple[str, ...], num_shards: int,
               ignored: Optional[list] = None) -> list[tuple[str, str]]:
    """The complete rw_deduped partitions a source reads: the dumps' shards of the
    current ``num_shards`` only. A shard folder outside them (left by a run with another
    ``num_shards``; Dagster shows no such partition) is never read: [] skips it (listed in
    ``ignored``), naming it is an error."""
    from corpus_assets.crawl import shard_key

    current = {shard_key(i, num_shards) for i in range(num_shards)}
    found = sorted({tuple(rel.split("/")[1:3]) for rel in store.list(f"{RW}/")
                    if rel.count("/") >= 3 and store.exists("/".join(rel.split("/")[:3]) + "/stats.json")})
    complete = [(d, s) for d, s in found if s in current]
    stale = [f"{d}|{s}" for d, s in found if s not in current]
    if ignored is not None:
        ignored.extend(stale)
    if not partitions:
        return complete
    chosen = []
    for part in partitions:
        dump, _, shard = part.partition("|")
        if shard and shard not in current:
            raise FileNotFoundError(f"rw_deduped partition {part!r} is not a shard of num_shards {num_shards} "
                                    f"(shards {min(current)}..{max(current)}): a folder left by another run")
        hits = [(d, s) for d, s in complete if d == dump and (not shard or s == shard)]
        if not hits:
            raise FileNotFoundError(f"rw_deduped has no complete partition for {part!r} in {store.uri(RW)}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _rw_unit(store: CorpusStore, dump: str, shard: str, domain: str = "web", keep: Optional[set] = None) -> Unit:
    part = f"{RW}/{dump}/{shard}"

    def rows() -> Iterator[dict]:
        for row in store.iter_rows(f"{part}/documents.parquet", ["doc_id", "url", "text"]):
            yield {"doc_id": row["doc_id"], "text": row.get("text") or "", "url": row.get("url"),
                   "lineage_id": row["doc_id"], "domain": domain}

    version = _partition_version(store, part, f"{part}/stats.json")
    return Unit(f"{RW}/{dump}/{shard}", f"{dump}|{shard}", version, rows, keep, reader="rw_deduped:doc_id,text",
                checks=[(f"{RW} {dump}|{shard}", version,
                         lambda: _partition_version(store, part, f"{part}/stats.json"))])


def source_units(store: CorpusStore, source: MixtureSourceSpec, config: PipelineConfig,
                 ignored: Optional[list] = None) -> list[Unit]:
    """The units source ``source`` reads; ``ignored`` gets the stale rw_deduped shard
    folders (outside ``num_shards``) that were skipped."""
    if source.asset == RW:
        try:
            shards = _rw_shards(store, source.partitions, config.num_shards, ignored)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"mixture source {source.name}: {exc}") from None
        return [_rw_unit(store, d, s) for d, s in shards]
    if source.asset == "domain_subsets":
        units = []
        for part in source.partitions:
            dump, _, domain = part.partition("|")
            rel = f"domain_subsets/{dump}/{domain}/docs.parquet"
            if not domain or not store.exists(rel):
                raise FileNotFoundError(f"mixture source {source.name}: domain_subsets has no partition {part!r} "
                                        "(partitions are dump|domain)")
            by_shard: dict[str, set] = {}
            for row in store.iter_rows(rel, ["doc_id", "shard"]):
                by_shard.setdefault(row["shard"], set()).add(row["doc_id"])
            subset_folder = f"domain_subsets/{dump}/{domain}"
            subset_version = _partition_version(store, subset_folder, f"{subset_folder}/stats.json")
            for shard in sorted(by_shard):
                unit = _rw_unit(store, dump, shard, domain, by_shard[shard])
                unit.partition = f"{part} (rw_deduped {dump}|{shard}, subset version {subset_version})"
                unit.checks.append((f"domain_subsets {part}", subset_version,
                                    lambda f=subset_folder: _partition_version(store, f, f"{f}/stats.json")))
                units.append(unit)
        return units
    if source.asset in (selection_stages.ZIPFIT, selection_stages.DSIR):
        units = []
        for target in source.partitions:
            rel = selection_stages.table_path(source.asset, target)
            if not store.exists(rel):
                raise FileNotFoundError(f"mixture source {source.name}: {source.asset} has no partition {target!r}")

            def rows(rel=rel) -> Iterator[dict]:
                for row in store.iter_rows(rel, ["doc_id", "text", "url", "lineage_id", "domain"]):
                    yield {**row, "text": row.get("text") or ""}

            def version(target=target) -> str:
                return _partition_version(store, f"{source.asset}/{target}",
                                          selection_stages.stats_path(source.asset, target))

            pinned = version()
            units.append(Unit(f"{source.asset}/{target}", target, pinned, rows, reader=f"{source.asset}:doc_id,text",
                              checks=[(f"{source.asset} {target}", pinned, version)]))
        return units
    # external JSONL files: the selection settings' sources, read by the selection's reader
    cfg = config.selection
    units = []
    for name in source.partitions:
        match = [s for s in cfg.sources if s.name == name]
        if not match:
            raise KeyError(f"mixture source {source.name}: no external source {name!r} in selection.sources "
                           f"(known: {[s.name for s in cfg.sources]})")
        path = selection_stages.resolve_path(cfg, match[0].path)
        if not path.is_file():
            raise FileNotFoundError(f"mixture source {source.name}: external source {name}: no such file {path}")

        # The text is the joined ``fields`` and the doc id comes from ``id_field``: other
        # settings, other counts and ids from the same bytes.
        reader = json.dumps({"reader": "selection_jsonl", "fields": list(match[0].fields),
                             "id_field": match[0].id_field}, sort_keys=True)
        sha = _file_sha(path)
        ext = match[0]
        unit = Unit(f"external/{name}", f"{name} ({path.name})", sha, lambda: iter(()), reader=reader,
                    checks=[(f"external source {name} ({path})", sha, lambda path=path: _file_sha(path))],
                    settings={"path": str(path), "fields": list(ext.fields), "id_field": ext.id_field,
                              "domain": ext.domain, "domain_field": ext.domain_field,
                              "domain_map": list(ext.domain_map)})

        def rows(ext=match[0], unit=unit) -> Iterator[dict]:
            counts = Counter()
            yield from selection_stages._source_documents(cfg, ext, counts)
            unit.reader_removed = Counter({k: v for k, v in counts.items() if k != "available"})

        unit.rows = rows
        units.append(unit)
    return units


def _usable(unit: Unit, removed: Counter, seen: set) -> Iterator[dict]:
    for row in unit.rows():
        if unit.keep is not None and row["doc_id"] not in unit.keep:
            continue
        if not row["text"].strip():
            removed[EMPTY_TEXT] += 1
            continue
        if row["doc_id"] in seen:
            removed[DUPLICATE_ID] += 1
            continue
        seen.add(row["doc_id"])
        yield row


def counts_path(unit: Unit, counter: TokenCounter) -> str:
    """The unit's token-count table: per tokenizer, unit, and a key of everything else
    that decides the counts (data version, reader settings, counting revision)."""
    return f"{TOKEN_COUNTS}/{counter.name}/{unit.key}/{_digest(unit.version, unit.reader, COUNTS_REVISION)}/token_counts.parquet"


def unit_token_counts(store: CorpusStore, unit: Unit, counter: TokenCounter, batch: int,
                      recount: bool = False) -> tuple[dict, bool]:
    """doc_id -> tokens for every non-empty document of the whole unit (before ``keep``),
    read from its attribute table, or counted and written there the first time (or when
    ``recount``)."""
    rel = counts_path(unit, counter)
    if store.exists(rel) and not recount:
        table = store.read_table(rel)
        return dict(zip(table.column("doc_id").to_pylist(), table.column("token_count").to_pylist())), False
    counts: dict[str, int] = {}
    whole = Unit(unit.key, unit.partition, unit.version, unit.rows, reader=unit.reader)
    with store.table_writer(rel, COUNTS_SCHEMA) as writer:
        pending: list[dict] = []

        def flush():
            try:
                tokens = counter.count([r["text"] for r in pending])
            except TokenCountError as exc:
                raise TokenCountError(exc.index, f"counting tokens of {unit.key} ({unit.partition}), document "
                                                 f"{pending[exc.index]['doc_id']!r}: {exc}") from None
            writer.write_table(pa.table({"doc_id": [r["doc_id"] for r in pending], "token_count": tokens},
                                        schema=COUNTS_SCHEMA))
            counts.update(zip((r["doc_id"] for r in pending), tokens))
            pending.clear()

        for row in _usable(whole, Counter(), set()):
            pending.append(row)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    return counts, True


def row_id(source: str, doc_id: str, epoch: int) -> str:
    """A row's id: ``<source>/<doc id>``, a repeat ``<source>#<epoch>/<doc id>``. The
    epoch sits in the first component, before the first '/', where a source name (no '/'
    nor '#') ends: a doc id of any spelling ("x#1" included) cannot make two rows alike."""
    return f"{source}#{epoch}/{doc_id}" if epoch else f"{source}/{doc_id}"


def _source_rows(source: MixtureSourceSpec, units: list[Unit], plan: planning.SourcePlan,
                 counts: dict[str, int]) -> Iterator[dict]:
    passes = plan.full_epochs + (1 if plan.partial else 0)
    for epoch in range(passes):
        seen: set = set()
        for unit in units:
            for row in _usable(unit, Counter(), seen):
                if epoch < plan.full_epochs or row["doc_id"] in plan.partial:
                    if row["doc_id"] not in counts:
                        raise SourceChangedError(
                            f"mixture source {source.name}: document {row['doc_id']!r} of {unit.partition} was not "
                            "there when the source was counted: the source changed while the mixture was built; "
                            "build again once it stops changing")
                    yield {"text": row["text"], "id": row_id(source.name, row["doc_id"], epoch),
                           "source": source.name, "lineage_id": row.get("lineage_id") or row["doc_id"],
                           "url": row.get("url"), "domain": row.get("domain") or "",
                           "token_count": counts[row["doc_id"]]}


def read_sources(store: CorpusStore, spec: MixtureSpec, config: PipelineConfig, counter: TokenCounter,
                 skip_unweighted: bool = False):
    """Every source's units, its usable documents' token counts (doc_id -> tokens) and its
    facts for the manifest (docs in = available + removed); and how many units had to be
    tokenized (0 when every count table existed). ``skip_unweighted``: a source of weight 0
    (left out of a weighted spec) is not read, listed as ``not_read``."""
    cfg = config.mixture
    per_source, units_of, counts_of = {}, {}, {}
    tokenized_units = 0
    for source in spec.sources:
        if skip_unweighted and spec.temperature is None and source.weight == 0:
            units_of[source.name], counts_of[source.name] = [], {}
            per_source[source.name] = {
                "asset": source.asset, "partitions": [], "not_read": "weight 0: left out, its inputs not read",
                "docs_in": 0, "removed_by_reason": {}, "available_docs": 0, "available_tokens": 0,
                "epoch_cap": spec.cap(source)}
            continue
        ignored: list = []
        units = source_units(store, source, config, ignored)
        counts: dict[str, int] = {}
        removed, seen = Counter(), set()
        docs_in = 0
        for unit in units:
            unit_counts, fresh = unit_token_counts(store, unit, counter, cfg.token_batch)
            tokenized_units += fresh
            found = 0
            for row in unit.rows():
                if row["text"].strip() and row["doc_id"] not in unit_counts and not fresh:
                    # A table that does not hold this reading's documents (written by an
                    # older code under the same key, or damaged): counted again, whole.
                    unit_counts, fresh = unit_token_counts(store, unit, counter, cfg.token_batch, recount=True)
                    tokenized_units += 1
                if unit.keep is not None and row["doc_id"] not in unit.keep:
                    continue
                docs_in += 1
                found += 1
                if not row["text"].strip():
                    removed[EMPTY_TEXT] += 1
                elif row["doc_id"] in seen:
                    removed[DUPLICATE_ID] += 1
                else:
                    seen.add(row["doc_id"])
                    counts[row["doc_id"]] = unit_counts[row["doc_id"]]
            removed.update(unit.reader_removed)
            docs_in += sum(unit.reader_removed.values())
            if unit.keep is not None:  # subset ids its rw_deduped shard no longer holds
                lost = len(unit.keep) - found
                if lost:
                    removed[MISSING_UPSTREAM] += lost
                    docs_in += lost
        units_of[source.name], counts_of[source.name] = units, counts
        per_source[source.name] = {
            "asset": source.asset, "partitions": [{"partition": u.partition, "data_version": u.version,
                                                    **({"reader": u.settings} if u.settings else {})} for u in units],
            "docs_in": docs_in, "removed_by_reason": dict(removed), "available_docs": len(counts),
            "available_tokens": sum(counts.values()), "epoch_cap": spec.cap(source),
            **({"ignored_partitions": ignored} if ignored else {})}
    return per_source, units_of, counts_of, tokenized_units


def plan_sources(spec: MixtureSpec, counts_of: dict[str, dict[str, int]], asked: dict[str, int],
                 share_tolerance: float, weights: Optional[dict[str, float]] = None) -> dict[str, planning.SourcePlan]:
    """Every source's plan. A source reaches its asked tokens by taking the document that
    crosses them, so it may overshoot. Asked tokens are whole numbers: rounding ``weight x
    budget`` already moves a share by up to ``rounding`` (< 1 token / budget), so each
    source asked for anything may overshoot by an equal part of ``(share_tolerance -
    rounding) x budget``. Every achieved share is then within the tolerance of the
    requested one (an overshoot of O tokens in all moves no share by more than O / budget,
    on top of the rounding): the asset check cannot fail on a plan that was accepted. A
    budget so small that the rounding alone exceeds the tolerance is refused."""
    budget = spec.token_budget
    rounding = max((abs(asked[n] / budget - weights[n]) for n in asked), default=0.0) if weights else 0.0
    if rounding > share_tolerance:
        worst = max(asked, key=lambda n: abs(asked[n] / budget - weights[n]))
        raise planning.MixturePlanError(
            f"mixture {spec.name}: token_budget {budget} is too small for the weights: source {worst} is asked "
            f"{asked[worst]} tokens ({asked[worst] / budget:.4f} of the budget) for a share of {weights[worst]:.4f}, "
            f"further than share_tolerance {share_tolerance} before any document is chosen; raise the budget")
    active = sum(1 for n in asked if asked[n] > 0) or 1
    slack = max(int((share_tolerance - rounding) * budget), 0) // active
    return {s.name: planning.plan_source(s.name, sorted(counts_of[s.name].items()), asked[s.name], spec.cap(s),
                                         spec.seed, max_overshoot=slack) for s in spec.sources}


# A build whose source changed under it is discarded and made again this many times in all.
BUILD_ATTEMPTS = 2


def build_training_mixture(store: CorpusStore, name: str, config: PipelineConfig,
                           spec: Optional[MixtureSpec] = None, counter: Optional[TokenCounter] = None,
                           attempts: int = BUILD_ATTEMPTS) -> dict:
    """Build (and publish) mixture ``name``. Every unit's data version is read once, when
    its units are listed, and read again after the shards are written: a source that
    changed in between discards the build (nothing is published) and the build starts
    over; after ``attempts`` builds it is a SourceChangedError."""
    cfg = config.mixture
    spec = spec or cfg.specs()[name]
    check_spec_inputs(spec, config.selection, name)
    counter = counter or TokenCounter(cfg.tokenizer, cfg.tokenizer_file)
    for attempt in range(1, attempts + 1):
        try:
            return _build_once(store, name, config, spec, counter)
        except SourceChangedError:
            if attempt == attempts:
                raise


def _build_once(store: CorpusStore, name: str, config: PipelineConfig, spec: MixtureSpec,
                counter: TokenCounter) -> dict:
    cfg = config.mixture
    started = time.perf_counter()

    # 1. units and token counts
    per_source, units_of, counts_of, tokenized_units = read_sources(store, spec, config, counter,
                                                                    skip_unweighted=True)

    # 2. plan
    available = {n: s["available_tokens"] for n, s in per_source.items()}
    weights = (planning.temperature_weights(available, spec.temperature) if spec.temperature is not None
               else spec.requested_weights())
    asked = planning.asked_tokens(weights, spec.token_budget)
    plans = plan_sources(spec, counts_of, asked, cfg.share_tolerance, weights)

    # 3. write
    streams = {s.name: _source_rows(s, units_of[s.name], plans[s.name], counts_of[s.name]) for s in spec.sources}
    remaining = {n: p.docs for n, p in plans.items()}
    shard_facts, written = [], Counter()
    width = shard_width(sum(p.tokens for p in plans.values()), cfg.shard_tokens)
    with store.publish_partition(folder(name)), store.table_writer(row_ids_path(name), ROW_IDS_SCHEMA) as ids_out:
        rows = shard_io.interleave(streams, remaining, spec.seed)
        for index, batch in enumerate(shard_io.shard_batches(rows, cfg.shard_tokens, spec.seed)):
            pq_name, js_name = shard_name(index, "parquet", width), shard_name(index, "jsonl.zst", width)
            with store.file_writer(f"{folder(name)}/{pq_name}", ".parquet") as (tmp, info):
                shard_io.write_parquet(batch, tmp)
                info["rows"] = len(batch)
            with store.file_writer(f"{folder(name)}/{js_name}", ".jsonl.zst") as (tmp, _):
                shard_io.write_jsonl_zst(batch, tmp, cfg.zstd_level)
            by_source = Counter(r["source"] for r in batch)
            for r in batch:
                written[r["source"]] += r["token_count"]
            # the row ids go to row_ids.parquet as each shard closes (a list per shard in the
            # manifest held ~0.4 KB per output document until the end)
            ids_out.write_table(pa.table({"shard": [index] * len(batch), "id": [r["id"] for r in batch]},
                                         schema=ROW_IDS_SCHEMA))
            shard_facts.append({"parquet": pq_name, "jsonl_zst": js_name, "docs": len(batch),
                                "tokens": sum(r["token_count"] for r in batch), "docs_by_source": dict(by_source)})
        # the texts written are the versions counted (or the publication is discarded)
        check_units_unchanged(units_of)
        total = sum(written.values())
        for n, s in per_source.items():
            p = plans[n]
            s.update(requested_share=round(weights[n], 6), asked_tokens=asked[n], tokens=written[n],
                     planned_tokens=p.tokens, docs=p.docs, full_epochs=p.full_epochs,
                     epochs=round(p.epochs, 4), achieved_share=round(written[n] / total, 6) if total else 0.0)
        manifest = {
            "mixture": spec.name, "version": spec.version,
            "config_hash": spec.config_hash(**output_settings(cfg, counter), readers=reader_settings(units_of)),
            "spec": _spec_dict(spec), "tokenizer": counter.name, "token_budget": spec.token_budget,
            "seed": spec.seed, "temperature": spec.temperature, "weights_meaning": "share of output tokens",
            "tokens": total, "docs": sum(f["docs"] for f in shard_facts), "shards": shard_facts,
            "row_ids": ROW_IDS,
            "sources": per_source, "share_tolerance": cfg.share_tolerance,
            "source_overlaps": source_overlaps(counts_of, plans),
        }
        store.write_json(manifest_path(name), manifest)
    manifest["tokenized_units"] = tokenized_units
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    return manifest


def output_settings(cfg, counter: TokenCounter) -> dict:
    """The settings beside the spec that change a mixture's bytes: in its config hash."""
    return {"shard_tokens": cfg.shard_tokens, "zstd_level": cfg.zstd_level, "tokenizer": counter.name,
            "share_tolerance": cfg.share_tolerance, "counts_revision": COUNTS_REVISION}


def source_overlaps(counts_of: dict[str, dict[str, int]], plans: dict[str, planning.SourcePlan]) -> list[dict]:
    """Pairs of sources that hold the same documents (the same doc id: an rw_deduped source
    and a domain subset of its dump, two subsets, a partition named in two sources): how
    many documents and tokens they share, and how many of those both write (each such
    document is in the output twice or more, whatever the sources' epochs say)."""
    def chosen(name: str) -> set:
        plan = plans[name]
        return set(counts_of[name]) if plan.full_epochs else set(plan.partial)

    names = sorted(counts_of)
    found = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            small, large = sorted((counts_of[a], counts_of[b]), key=len)
            shared = [d for d in small if d in large]
            if not shared:
                continue
            both = chosen(a) & chosen(b)
            found.append({"sources": [a, b], "shared_docs": len(shared),
                          "shared_tokens": sum(small[d] for d in shared), "written_by_both_docs": len(both),
                          "written_by_both_tokens": sum(counts_of[a][d] for d in both)})
    return found


def reader_settings(units_of: dict[str, list[Unit]]) -> dict:
    """Per source, the reader settings of its units that have any (external JSONL files):
    other fields, ids or domain labels over the same bytes are another mixture."""
    return {name: [u.settings for u in units] for name, units in sorted(units_of.items())
            if any(u.settings for u in units)}


def _spec_dict(spec: MixtureSpec) -> dict:
    import dataclasses

    return dataclasses.asdict(spec)


def verify_shares(manifest: dict) -> tuple[bool, dict]:
    """Every source's achieved token share within the tolerance of the requested one."""
    tol = manifest["share_tolerance"]
    gaps = {n: round(abs(s["achieved_share"] - s["requested_share"]), 6) for n, s in manifest["sources"].items()}
    return all(g <= tol for g in gaps.values()), {"tolerance": tol, "max_gap": max(gaps.values(), default=0.0),
                                                   "gaps": gaps}


# -- the mixture search (RegMix-style) ------------------------------------------------------

SEARCH = "mixture_search"


def search_path(name: str, file: str) -> str:
    return f"{SEARCH}/{name}/{file}"


def _search_texts(store, spec, config, counter) -> tuple[dict, dict, dict]:
    """Per source: a seeded sample of document texts for proxy training, and a held-out
    fifth of it as that source's validation set; and the natural (available) tokens."""
    cfg = config.mixture
    per_source, units_of, counts_of, _ = read_sources(store, spec, config, counter)
    train, heldout = {}, {}
    for source in spec.sources:
        ids = sorted(counts_of[source.name], key=lambda d: (planning.unit_hash(cfg.search_seed, "search", d), d))
        chosen = set(ids[: cfg.search_docs_per_source])
        held = {d for d in chosen if planning.unit_hash(cfg.search_seed, "heldout", d) < 0.2}
        train[source.name], heldout[source.name] = [], []
        seen: set = set()
        for unit in units_of[source.name]:
            for row in _usable(unit, Counter(), seen):
                if row["doc_id"] in chosen:
                    (heldout if row["doc_id"] in held else train)[source.name].append(row["text"])
    check_units_unchanged(units_of)
    return train, heldout, {n: s["available_tokens"] for n, s in per_source.items()}


class MixtureSearchError(ValueError):
    """A search that cannot run as set: no validation set, or an objective naming a set
    that is not there (never silently replaced by another objective)."""


def search_objective(wanted: tuple[str, ...], validation: dict, missing_targets: list[str], name: str) -> list[str]:
    """The validation sets whose mean predicted loss the proposal minimizes: those
    ``mixture.search_objective`` names, every one of them present; empty = all sets."""
    if not validation:
        raise MixtureSearchError(
            f"mixture_search {name}: no validation set: no selection target's examples could be read "
            f"(missing: {missing_targets}) and no source gave held-out documents; set selection.targets or give "
            "the sources documents")
    if not wanted:
        return sorted(validation)
    absent = [o for o in wanted if o not in validation]
    if absent:
        why = f"; targets whose files are missing: {missing_targets}" if missing_targets else ""
        raise MixtureSearchError(
            f"mixture_search {name}: mixture.search_objective names {absent}, which are not validation sets here "
            f"(present: {sorted(validation)}{why}). Name present sets, or [] for the mean over all of them.")
    return list(wanted)


def build_mixture_search(store: CorpusStore, name: str, config: PipelineConfig,
                         spec: Optional[MixtureSpec] = None, counter: Optional[TokenCounter] = None) -> dict:
    import dataclasses

    import numpy as np
    import yaml

    from corpus_assets.steps.mixture import regmix

    cfg = config.mixture
    spec = spec or cfg.specs()[name]
    check_spec_inputs(spec, config.selection, name)
    counter = counter or TokenCounter(cfg.tokenizer, cfg.tokenizer_file)
    started = time.perf_counter()
    try:
        train, heldout, available = _search_texts(store, spec, config, counter)
    except SourceChangedError:  # once more, on the versions now there
        train, heldout, available = _search_texts(store, spec, config, counter)
    validation = {f"heldout_{n}": texts for n, texts in heldout.items() if texts}
    missing_targets = []
    for target in config.selection.targets:
        try:
            examples, _ = selection_stages.load_target_examples(config.selection, target)
        except FileNotFoundError:
            missing_targets.append(target.name)
            continue
        validation[target.name] = [e["text"] for e in examples if e["split"] == selection_stages.HELDOUT]
    objective = search_objective(cfg.search_objective, validation, missing_targets, name)
    names = [s.name for s in spec.sources]
    natural = np.array([max(available[n], 1) for n in names], dtype=np.float64)
    measure = regmix.ngram_measure([train[n] for n in names], validation, cfg.search_train_bytes, cfg.search_lm_order)
    result = regmix.search(names, natural, measure, objective, n_candidates=cfg.search_candidates, seed=cfg.search_seed)
    # A temperature spec's shares come from the sources' sizes, as the mixture's plan takes them.
    spec_weights = (planning.temperature_weights(available, spec.temperature) if spec.temperature is not None
                    else spec.requested_weights())
    base = dataclasses.asdict(spec)
    proposal = regmix.proposal_spec(result, base, f"{spec.name}_regmix")
    result.update(mixture=spec.name, validation_sets={k: len(v) for k, v in validation.items()},
                  missing_targets=missing_targets, train_bytes=cfg.search_train_bytes, lm_order=cfg.search_lm_order,
                  spec_weights=[round(spec_weights[n], 6) for n in names], proposal_spec=proposal)
    with store.publish_partition(f"{SEARCH}/{name}"):
        with store.file_writer(search_path(name, "proposal.yaml"), ".yaml") as (tmp, _):
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(f"# RegMix-style proposal for {spec.name} (mixture_search); copy into mixture.specs_dir to build it\n")
                yaml.safe_dump(proposal, fh, sort_keys=False)
        store.write_json(search_path(name, "report.json"), result)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
