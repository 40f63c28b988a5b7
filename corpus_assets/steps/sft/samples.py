"""Reading an instruction dataset: JSONL(.gz) records -> samples, every unusable line a
counted reason (never a crash, never a silent loss).

A sample's text is its instruction, input and output joined by blank lines (an empty input
is left out); statistics, dedup and token counts are of that text, the form a fine-tuning
recipe sees once the prompt template is applied (templates add a fixed overhead per sample).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

from corpus_assets.steps.sft.config import SftDataset

MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
NON_STRING_FIELD = "non_string_field"
EMPTY_INSTRUCTION = "empty_instruction"
EMPTY_RESPONSE = "empty_response"
RECORD_TOO_LONG = "record_too_long"
BLANK_LINE = "blank_line"
INVALID_UTF8 = "invalid_utf8"              # the line's bytes are not UTF-8 (a Latin-1 file, say)
INVALID_UNICODE = "invalid_unicode"        # a field holds a lone surrogate (JSON "\ud800")
READ_REASONS = (BLANK_LINE, INVALID_UTF8, MALFORMED_JSON, NOT_AN_OBJECT, MISSING_FIELD, NON_STRING_FIELD,
                INVALID_UNICODE, EMPTY_INSTRUCTION, EMPTY_RESPONSE, RECORD_TOO_LONG)
GZIP_MAGIC = b"\x1f\x8b"


def sample_text(instruction: str, input_: str, output: str) -> str:
    return "\n\n".join(part for part in (instruction, input_, output) if part and part.strip())


def parse_record(line: str, dataset: SftDataset, max_chars: int) -> tuple[Optional[dict], Optional[str]]:
    """(sample fields, None) or (None, reason) for one JSONL line."""
    if not line.strip():
        return None, BLANK_LINE
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None, MALFORMED_JSON
    if not isinstance(record, dict):
        return None, NOT_AN_OBJECT
    values = {}
    for key, name, required in (("instruction", dataset.instruction_field, True),
                                ("input", dataset.input_field, False),
                                ("output", dataset.output_field, True)):
        value = record.get(name)
        if value is None:
            if required:
                return None, MISSING_FIELD
            value = ""
        if not isinstance(value, str):
            return None, NON_STRING_FIELD
        values[key] = value
    source = record.get(dataset.source_field)
    values["source"] = source if isinstance(source, str) and source else dataset.name
    for value in values.values():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None, INVALID_UNICODE  # unwritable as UTF-8 (parquet, JSONL): counted, never a crash
    if not values["instruction"].strip() and not values["input"].strip():
        return None, EMPTY_INSTRUCTION
    if not values["output"].strip():
        return None, EMPTY_RESPONSE
    if len(values["instruction"]) + len(values["input"]) + len(values["output"]) > max_chars:
        return None, RECORD_TOO_LONG
    return values, None


def read_samples(path: Path, dataset: SftDataset, max_chars: int, removed: Counter) -> Iterator[dict]:
    """The dataset's samples in file order, each with ``sample_id`` (``<dataset>:<line>``,
    1-based line numbers), ``dataset``, ``source``, ``instruction``, ``input``, ``output``;
    ``removed`` counts the lines that are not samples, by reason. A gzip file is recognized by
    its magic bytes, whatever its name; a UTF-8 byte-order mark before the first line is
    skipped; a line whose bytes are not UTF-8 is the counted reason ``invalid_utf8`` (never
    silently replaced by U+FFFD)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sft dataset {dataset.name}: file not found: {path}")
    try:
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == GZIP_MAGIC
        if path.suffix == ".gz" and not gzipped:
            raise gzip.BadGzipFile("named .gz but not gzip data")
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
            for number, raw in enumerate(fh, start=1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    removed[INVALID_UTF8] += 1
                    continue
                values, reason = parse_record(line, dataset, max_chars)
                if reason:
                    removed[reason] += 1
                    continue
                yield {"sample_id": f"{dataset.name}:{number}", "dataset": dataset.name, **values}
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ValueError(f"sft dataset {dataset.name}: cannot read {path}: {type(exc).__name__}: {exc}") from exc
