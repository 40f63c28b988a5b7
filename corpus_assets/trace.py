"""Where did this document come from, and why was this URL dropped?

    python -m corpus_assets.trace URL_OR_DOC_ID [--corpus-root DIR] [--crawl-root DIR] [--json]

Looks the URL (exact, as the WARC-Target-URI was stored; a space also tried as %20) or the ``doc_id`` up in
every table of the corpus store: the documents an asset kept (``documents.parquet``), the
removal ledgers (``removed.parquet``: the step, the reason and its detail), and every other
table that names documents (duplicate clusters, domain labels and subsets, selections,
mixture shards: matched on ``doc_id``, ``lineage_id`` or ``keeper_doc_id``). Then it reads
the WARC record back from the crawl, at the ``warc_path`` (relative to the crawl root)
and ``warc_offset`` the tables carry, and checks its WARC-Record-ID.

The lookup reads each table's footer and then only the row groups whose statistics can
hold the value; on a large store it still opens every table, so it is a support tool, not
an index. A damaged partition or table is skipped with a line naming it (on stderr), and
the lookup goes on. Exit status: 0 found, 1 not found, 2 unusable input (or a root that
holds no store), 3 not found but some damaged partitions could not be searched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from pathlib import Path
from typing import Optional

from corpus_assets.storage import CorpusStore

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_QUERY = 8192
# The order a document passes the assets; other assets come after, by name.
ASSET_ORDER = ["raw_documents", "rw_raw", "rw_quality_signals", "rw_filtered", "minhash_signatures", "minhash_buckets",
               "duplicate_clusters", "exact_substring_spans", "rw_deduped", "dedup_index", "ccnet_text",
               "ccnet_line_dedup", "ccnet_perplexity", "ccnet_buckets", "domain_seed_labels", "domain_classifiers",
               "domain_labels", "domain_subsets", "selection_pool", "zipfit_selection", "dsir_selection",
               "training_mixture"]
ID_COLUMNS = ("doc_id", "lineage_id", "keeper_doc_id")
# Columns too large to print (the text itself) or of no use here.
SKIP_COLUMNS = {"text", "html", "body", "embedding", "data", "span_starts", "span_stops"}
MAX_VALUE_CHARS = 300


class TraceInputError(ValueError):
    """A query that cannot name a document (empty, control characters, absurdly long)."""


def check_query(query: object) -> str:
    if not isinstance(query, str):
        raise TraceInputError("the query must be a URL or a doc_id (text)")
    query = query.strip()
    if not query:
        raise TraceInputError("empty query: give a URL or a doc_id")
    if len(query) > MAX_QUERY:
        raise TraceInputError(f"query of {len(query)} characters: a URL or doc_id is at most {MAX_QUERY}")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in query):
        raise TraceInputError("the query holds control characters: no URL or doc_id does")
    return query


def is_url(query: str) -> bool:
    return "://" in query or query.lower().startswith(("http:", "https:", "ftp:", "www."))


def _short(value):
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (list, dict)):
        value = json.dumps(value, default=str)
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "..."
    return value


def _order(hit: dict) -> tuple:
    asset = hit["asset"]
    return (ASSET_ORDER.index(asset) if asset in ASSET_ORDER else len(ASSET_ORDER), asset, hit["file"])


def _matches(store: CorpusStore, rel: str, names: list[str], filters: list) -> list[dict]:
    table = store.read_table(rel, columns=[c for c in names if c not in SKIP_COLUMNS and not c.startswith("band_")],
                             filters=filters)
    parts = rel.split("/")
    name = parts[-1]
    role = "removed" if name == "removed.parquet" else "kept" if name == "documents.parquet" else "referenced"
    if parts[0] == "dedup_index":  # the index holds what this dump and every earlier one kept
        role = "referenced"
    return [{"asset": parts[0], "partition": "/".join(parts[1:-1]), "file": rel, "role": role,
             "row": {k: _short(v) for k, v in row.items()}} for row in table.to_pylist()]


def _problem(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:MAX_VALUE_CHARS]


def _tables(store: CorpusStore) -> tuple[list[tuple[str, list[str]]], list[dict]]:
    """Every stored table with its columns, and the partitions/tables that could not be
    read ({file, problem}): one damaged partition (a bad pointer, an object whose checksum
    differs) is skipped and named, never the end of the lookup."""
    folders = sorted({rel.rsplit("/", 1)[0] if "/" in rel else "" for rel in store.list("", physical=True)})
    tables, skipped = [], []
    for folder in folders:
        try:
            rels = [r for r in store.list(folder) if (r.rsplit("/", 1)[0] if "/" in r else "") == folder]
        except Exception as exc:  # a damaged partition pointer: name it, go on
            skipped.append({"file": folder or ".", "problem": _problem(exc)})
            continue
        for rel in rels:
            if not rel.endswith(".parquet"):
                continue
            try:
                tables.append((rel, store.schema(rel).names))
            except Exception as exc:  # a damaged table: name it, go on
                skipped.append({"file": rel, "problem": _problem(exc)})
    return tables, skipped


def search(store: CorpusStore, query: str) -> dict:
    """``find``'s lookup with its coverage: {hits, tables (how many were searched),
    skipped (the damaged partitions and tables, each {file, problem})}."""
    query = check_query(query)
    tables, skipped = _tables(store)
    hits: list[dict] = []
    matched_as = query

    def look(rel, names, filters):
        try:
            return _matches(store, rel, names, filters)
        except Exception as exc:  # damaged past its footer
            skipped.append({"file": rel, "problem": _problem(exc)})
            return []

    if is_url(query):
        # as typed, then as warcio stores a WARC-Target-URI holding spaces (each one %20)
        for form in dict.fromkeys([query, query.replace(" ", "%20")]):
            for rel, names in tables:
                if "url" in names:
                    hits += look(rel, names, [("url", "=", form)])
            if hits:
                matched_as = form
                break
        ids = sorted({h["row"]["doc_id"] for h in hits if h["row"].get("doc_id")})
        if ids:
            for rel, names in tables:
                present = [c for c in ID_COLUMNS if c in names]
                if present and "url" not in names:
                    hits += look(rel, names, [[(c, "in", ids)] for c in present])
    else:
        for rel, names in tables:
            present = [c for c in ID_COLUMNS if c in names]
            if present:
                hits += look(rel, names, [[(c, "=", query)] for c in present])
    return {"hits": sorted(hits, key=_order), "tables": len(tables), "skipped": skipped, "matched_as": matched_as}


def find(store: CorpusStore, query: str) -> list[dict]:
    """Every row of every stored table that names ``query``: {asset, partition, file,
    role (kept / removed / referenced), row (its small columns, not the text)}. A URL is
    matched in every table with a ``url`` column; the doc_ids found then in the tables
    without one (clusters, labels, band keys). Damaged tables are skipped (``search``
    names them)."""
    return search(store, query)["hits"]


def read_warc_record(crawl, warc_path: str, offset: int, record_id: str = "") -> dict:
    """The WARC record at ``offset`` of ``warc_path`` (relative to the crawl root), read
    back: its headers, HTTP status and the first characters of the payload, and whether its
    WARC-Record-ID is the one the corpus recorded. ``crawl``: a ``CrawlSource`` or the
    crawl root (a folder or an HTTPS base; an ``s3://`` root needs a source with its client)."""
    from warcio.archiveiterator import ArchiveIterator

    from corpus_assets.crawl import CrawlSource, CrawlSourceError

    if offset is None or offset < 0:
        return {"error": "no offset recorded (a record read from a continuous gzip stream, or a file never read)"}
    try:
        source = crawl if isinstance(crawl, CrawlSource) else CrawlSource(str(crawl))
        stream = source.open(warc_path)
    except (CrawlSourceError, ValueError) as exc:
        return {"error": f"cannot open {warc_path!r} under {getattr(crawl, 'root', crawl)}: {exc}"}
    with stream:
        try:
            if stream.seekable():
                stream.seek(offset)
            else:
                remaining = offset
                while remaining:
                    chunk = stream.read(min(remaining, 1 << 20))
                    if not chunk:
                        return {"error": f"{warc_path} ends before offset {offset}"}
                    remaining -= len(chunk)
            record = next(iter(ArchiveIterator(stream)), None)
            if record is None:
                return {"error": f"no WARC record at offset {offset} of {warc_path}"}
            headers = record.rec_headers
            payload = record.content_stream().read(4096)
            out = {
                "warc_path": warc_path,
                "offset": offset,
                "warc_type": headers.get_header("WARC-Type"),
                "warc_record_id": headers.get_header("WARC-Record-ID"),
                "target_uri": headers.get_header("WARC-Target-URI"),
                "warc_date": headers.get_header("WARC-Date"),
                "http_status": record.http_headers.get_statuscode() if record.http_headers else None,
                "content_type": record.http_headers.get_header("Content-Type") if record.http_headers else None,
                "payload_start": payload[:600].decode("utf-8", errors="replace"),
            }
        except Exception as exc:  # a damaged file: say so, do not crash the lookup
            return {"error": f"cannot read the record at {offset} of {warc_path}: {type(exc).__name__}: {exc}"}
    out["record_id_matches"] = (out["warc_record_id"] == record_id) if record_id else None
    return out


def trace(store: CorpusStore, query: str, crawl=None) -> dict:
    """The lookup and, for each document found, its WARC record read back from ``crawl``
    (a ``CrawlSource`` or a crawl root; None: not read)."""
    found = search(store, query)
    hits = found["hits"]
    records, no_offset = {}, set()
    if crawl:
        for hit in hits:
            row = hit["row"]
            doc_id, path, offset = row.get("doc_id"), row.get("warc_path"), row.get("warc_offset")
            if not doc_id or not path or (doc_id in records and doc_id not in no_offset):
                continue
            # offset 0 is a real place (a WARC without a leading warcinfo record): test for None, not falsiness
            if offset is not None and offset >= 0:
                records[doc_id] = read_warc_record(crawl, path, offset, row.get("warc_record_id") or "")
                no_offset.discard(doc_id)
            elif doc_id not in records:  # say so, unless a later table carries the offset
                records[doc_id] = read_warc_record(crawl, path, None)
                no_offset.add(doc_id)
    return {"query": query, "kind": "url" if is_url(query) else "doc_id", "hits": hits, "warc_records": records,
            "tables_searched": found["tables"], "skipped": found["skipped"],
            **({"matched_as": found["matched_as"]} if found.get("matched_as", query) != query else {})}


def _line(hit: dict, owner: str = "") -> str:
    row = hit["row"]
    where = f"{hit['asset']} {hit['partition']}".strip()
    other = row.get("doc_id") or row.get("lineage_id")
    if owner and row.get("keeper_doc_id") == owner and other and other != owner:
        # another document's row that names this one as the copy kept in its place
        dump = f" of {row['dump']}" if row.get("dump") else ""
        return f"  {where:<40} kept in place of its duplicate {other}{dump} (that row: keep={row.get('keep')})"
    if hit["role"] == "removed":
        what = f"REMOVED by step {row.get('step') or '?'}: {row.get('reason')}"
        if row.get("detail"):
            what += f" ({row['detail']})"
    elif hit["role"] == "kept":
        what = "kept"
        extra = {k: row[k] for k in ("language", "language_score", "minhash_cluster_size", "domain") if k in row}
        if extra:
            what += " " + ", ".join(f"{k}={v}" for k, v in extra.items())
    else:
        shown = {k: v for k, v in row.items() if k not in ("doc_id", "url", "shard", "dump") and v not in (None, "")}
        what = "listed in " + hit["file"].rsplit("/", 1)[-1]
        if shown:
            what += ": " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:8])
    return f"  {where:<40} {what}"


def format_report(result: dict) -> str:
    hits = result["hits"]
    skipped = result.get("skipped") or []
    if not hits:
        text = f"{result['query']!r}: no {result['kind']} like this in any asset of the corpus"
        if skipped:
            text += f" (but {len(skipped)} damaged partition(s)/table(s) could not be searched; see above)"
        elif result["kind"] == "url":
            text += (" (a URL is matched exactly as stored: the WARC-Target-URI as warcio read it, e.g. a space"
                     " as %20, same case, same fragment; try the doc_id, or the URL as a WARC index lists it)")
        return text
    lines = []
    if result.get("matched_as"):
        lines.append(f"(matched as {result['matched_as']}: the form the store holds)")

    def own(h):
        return h["row"].get("doc_id") or h["row"].get("lineage_id") or ""

    blocks = list(dict.fromkeys(own(h) for h in hits))
    for doc_id in blocks:
        mine = [h for h in hits if own(h) == doc_id or h["row"].get("keeper_doc_id") == doc_id]
        # a document found only as the duplicate in another one's cluster row: shown in its keeper's block
        if all(own(h) == doc_id and h["row"].get("keeper_doc_id") not in (None, "", doc_id)
               and h["row"]["keeper_doc_id"] in blocks for h in mine):
            continue
        first = next((h["row"] for h in mine if h["row"].get("url")), mine[0]["row"])
        lines.append(f"doc_id {doc_id or '?'}  url {first.get('url') or '-'}")
        if first.get("warc_path"):
            lines.append(f"  from {first.get('warc_path')} @ {first.get('warc_offset')} "
                         f"(dump {first.get('dump')}, shard {first.get('shard')}; warc_path is relative to the crawl root)")
        lines += [_line(h, doc_id) for h in mine]
        removed = [h for h in mine if h["role"] == "removed"]
        kept = [h["asset"] for h in mine if h["role"] == "kept"]
        if removed:
            last = removed[-1]
            lines.append(f"  => dropped at {last['asset']}, step {last['row'].get('step')}: {last['row'].get('reason')}")
        elif kept:
            lines.append(f"  => kept through {kept[-1]}")
        record = result["warc_records"].get(doc_id)
        if record:
            if "error" in record:
                lines.append(f"  WARC record: {record['error']}")
            else:
                match = {True: "matches", False: "DOES NOT MATCH", None: "not recorded"}[record["record_id_matches"]]
                lines.append(f"  WARC record read back: {record['warc_type']} {record['target_uri']} {record['warc_date']} "
                             f"HTTP {record['http_status']} {record['content_type']}; record id {match}")
                lines.append("    " + record["payload_start"][:200].replace("\n", " ").replace("\r", " "))
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corpus_assets.trace", description=__doc__.split("\n\n")[0])
    parser.add_argument("query", help="a URL (exact) or a doc_id")
    parser.add_argument("--corpus-root", default=os.environ.get("CORPUS_ROOT") or str(REPO_ROOT / ".corpus"))
    parser.add_argument("--crawl-root", default=os.environ.get("CORPUS_CRAWL_ROOT")
                        or str((REPO_ROOT.parent / "shared" / "data").resolve()))
    parser.add_argument("--no-warc", action="store_true", help="do not read the WARC record back")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        query = check_query(args.query)
    except TraceInputError as exc:
        print(f"trace: {exc}", file=sys.stderr)
        return 2
    # As the assets build them: an s3:// root gets its client (CORPUS_S3_ENDPOINT_URL honoured).
    from corpus_assets.resources import CorpusStoreResource, CrawlSourceResource

    endpoint = os.environ.get("CORPUS_S3_ENDPOINT_URL") or None
    try:
        store = CorpusStoreResource(root=args.corpus_root, s3_endpoint_url=endpoint).get_store()
        crawl = None if args.no_warc else CrawlSourceResource(root=args.crawl_root, s3_endpoint_url=endpoint).get_source()
    except (ValueError, RuntimeError) as exc:  # a root that is no store or crawl source
        print(f"trace: {exc}", file=sys.stderr)
        return 2
    result = trace(store, query, crawl)
    if not result["tables_searched"] and not result["skipped"]:  # a typo in the root, or an empty store
        print(f"trace: no corpus store at {args.corpus_root} (no table under it); give --corpus-root or CORPUS_ROOT",
              file=sys.stderr)
        return 2
    for s in result["skipped"]:
        print(f"trace: skipped {s['file']}: {s['problem']}", file=sys.stderr)
    print(json.dumps(result, indent=1, default=str) if args.json else format_report(result))
    if result["hits"]:
        return 0
    return 3 if result["skipped"] else 1


if __name__ == "__main__":
    sys.exit(main())
