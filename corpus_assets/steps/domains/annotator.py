"""The ``llm`` annotator: FineFineWeb's LLM labelling through any OpenAI-compatible
chat-completions endpoint (vLLM, llama.cpp server, a hosted API).

- Inputs go in batches; the model answers a JSON object ``{"labels": [{"id", "domain"}]}``.
- Every answer is validated against the taxonomy: a label outside it (or ``none``), a
  missing id, or a reply that is not JSON is counted (``invalid``, ``missing``,
  ``bad_json``) and never trusted.
- A label that is not a string (``null``, a number) or an id answered twice differently
  is ``invalid`` and not cached: it is asked again on the next run.
- A redirect is never followed (the API key would go to wherever it points): it fails
  the batch, counted ``redirect_<code>``.
- Each request has a total deadline (``deadline_s``; ``timeout_s`` bounds each socket
  read only, which a server trickling bytes never trips) and a reply-size cap. After
  ``max_failed_batches`` failed batches in a row the annotator raises ``LlmUnavailable``
  rather than spend minutes per batch against a dead or misconfigured endpoint.
- HTTP 429 and 5xx, timeouts, connection errors and malformed HTTP replies are retried with exponential backoff
  (``Retry-After`` honoured when given, capped); a batch that still fails is counted
  ``failed`` and its inputs stay unlabelled.
- Every answer (valid or not) is cached under a key of (input, prompt version, model), so
  a re-run sends nothing already answered. The cache is the caller's (a dict-like); the
  stage keeps it in the corpus store.
- The API key comes from the environment variable named in the settings; it is sent in
  the ``Authorization`` header and appears in no error message, metadata or log.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
from urllib.parse import urlsplit
from dataclasses import dataclass, field
from typing import Callable, MutableMapping, Optional, Sequence

from .seeds import NONE_LABEL

PROMPT_ROOT = ("You label websites by topic. For each root URL, answer the single domain of the "
               "taxonomy its pages are mostly about, or \"none\" if no domain fits.")
PROMPT_DOC = ("You label web documents by topic. For each document, answer the single domain of the "
              "taxonomy it is about, or \"none\" if no domain fits.")
INVALID = "__invalid__"
RETRYABLE = {429, 500, 502, 503, 504}


class LlmUnavailable(RuntimeError):
    """Too many failed batches in a row: the endpoint is down or misconfigured."""


@dataclass
class AnnotatorStats:
    requests: int = 0
    retries: int = 0
    cached: int = 0
    labelled: int = 0
    invalid: int = 0     # a label outside the taxonomy
    missing: int = 0     # an input the reply did not answer
    bad_json: int = 0    # replies that were not the JSON asked for (whole batch)
    failed: int = 0      # inputs whose batch failed after every retry
    errors: dict = field(default_factory=dict)  # "http_429", "timeout", ... -> count
    last_error: str = ""  # what went wrong last, for the operator (never the key)

    def count_error(self, kind: str, message: str = "") -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = message or kind

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("requests", "retries", "cached", "labelled", "invalid", "missing",
                                              "bad_json", "failed")} | {"errors": dict(self.errors), "last_error": self.last_error}


def cache_key(text: str, prompt_version: str, model: str, kind: str) -> str:
    return hashlib.sha256(f"{kind}\x00{prompt_version}\x00{model}\x00{text}".encode()).hexdigest()


class LlmAnnotator:
    def __init__(self, base_url: str, model: str, domains: Sequence[str], api_key: Optional[str] = None,
                 batch_size: int = 16, timeout_s: float = 30.0, max_retries: int = 4, backoff_s: float = 1.0,
                 prompt_version: str = "v1", cache: Optional[MutableMapping[str, str]] = None,
                 sleep: Callable[[float], None] = time.sleep, max_chars: int = 1500,
                 deadline_s: float = 120.0, max_reply_bytes: int = 4_000_000, max_failed_batches: int = 3):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.domains = list(domains)
        # Models answer "Sports" for "sports": compare case-insensitively, map back to the
        # taxonomy's own name (the taxonomy refuses names differing only in case).
        self._allowed = {d.lower(): d for d in self.domains} | {NONE_LABEL: NONE_LABEL}
        self.deadline_s = deadline_s
        self.max_reply_bytes = max_reply_bytes
        self.max_failed_batches = max_failed_batches
        self._failed_in_a_row = 0
        self._api_key = api_key
        self.batch_size = max(1, batch_size)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.prompt_version = prompt_version
        self.cache = cache if cache is not None else {}
        self.new_answers: dict[str, str] = {}
        self.stats = AnnotatorStats()
        self._sleep = sleep
        self.max_chars = max_chars

    @classmethod
    def from_config(cls, cfg, domains: Sequence[str], cache=None) -> "LlmAnnotator":
        return cls(cfg.llm_base_url, cfg.llm_model, domains, api_key=os.environ.get(cfg.llm_api_key_env),
                   batch_size=cfg.llm_batch_size, timeout_s=cfg.llm_timeout_s, max_retries=cfg.llm_max_retries,
                   backoff_s=cfg.llm_backoff_s, prompt_version=cfg.llm_prompt_version, cache=cache,
                   deadline_s=cfg.llm_request_deadline_s, max_reply_bytes=cfg.llm_max_reply_bytes,
                   max_failed_batches=cfg.llm_max_failed_batches)

    def __repr__(self) -> str:  # never show the key
        return f"LlmAnnotator(url={self.url!r}, model={self.model!r})"

    # -- public ------------------------------------------------------------------------
    def label_roots(self, roots: Sequence[str]) -> dict[str, Optional[str]]:
        return self._label(list(roots), "root")

    def label_documents(self, texts: Sequence[str]) -> list[Optional[str]]:
        answers = self._label([(t or "")[: self.max_chars] for t in texts], "doc")
        return [answers.get((t or "")[: self.max_chars]) for t in texts]

    # -- internals ---------------------------------------------------------------------
    def _label(self, inputs: list[str], kind: str) -> dict[str, Optional[str]]:
        """input -> domain, ``none``, or None (invalid, missing, failed)."""
        out: dict[str, Optional[str]] = {}
        todo = []
        for text in dict.fromkeys(inputs):  # unique, in order
            key = cache_key(text, self.prompt_version, self.model, kind)
            if key in self.cache:
                self.stats.cached += 1
                answer = self.cache[key]
                out[text] = None if answer == INVALID else answer
            else:
                todo.append((key, text))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            replies = self._ask(batch, kind)
            if replies is None:
                self.stats.failed += len(batch)
                for _, text in batch:
                    out[text] = None
                self._failed_in_a_row += 1
                if self._failed_in_a_row >= self.max_failed_batches:
                    raise LlmUnavailable(f"LLM annotator: {self._failed_in_a_row} batches in a row failed "
                                         f"({self.url}; last error: {self.stats.last_error}); stopping")
                continue
            self._failed_in_a_row = 0
            for i, (key, text) in enumerate(batch):
                if str(i) not in replies:
                    self.stats.missing += 1
                    out[text] = None
                    continue  # not an answer: not cached, asked again next run
                label = replies[str(i)]
                if not isinstance(label, str):
                    # null, a number, or an id answered twice differently: not an answer
                    # (null is not "none"); not cached, asked again next run
                    self.stats.invalid += 1
                    out[text] = None
                    continue
                label = self._allowed.get(label.strip().lower())
                if label is None:
                    self.stats.invalid += 1
                    answer = INVALID
                else:
                    self.stats.labelled += 1
                    answer = label
                self.cache[key] = answer
                self.new_answers[key] = answer
                out[text] = None if answer == INVALID else answer
        return out

    def _messages(self, batch, kind: str) -> list[dict]:
        system = (PROMPT_ROOT if kind == "root" else PROMPT_DOC) + (
            " Domains: " + ", ".join(self.domains) + '. Reply with JSON only: {"labels": [{"id": "<id>", "domain": "<domain or none>"}]}.')
        items = [{"id": str(i), "input": text} for i, (_, text) in enumerate(batch)]
        return [{"role": "system", "content": system}, {"role": "user", "content": json.dumps(items, ensure_ascii=False)}]

    def _ask(self, batch, kind: str) -> Optional[dict]:
        body = json.dumps({"model": self.model, "messages": self._messages(batch, kind), "temperature": 0}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            self.stats.requests += 1
            delay = self.backoff_s * (2 ** attempt)
            try:
                status, reply_headers, payload = self._post(body, headers)
            except _DeadlinePassed:
                self.stats.count_error("deadline", f"no complete reply within {self.deadline_s} s")
            except _TooLarge:
                self.stats.count_error("too_large", f"reply over {self.max_reply_bytes} bytes")
            except (TimeoutError, socket.timeout):
                self.stats.count_error("timeout", f"no data for {self.timeout_s} s")
            except (http.client.HTTPException, ConnectionError, OSError) as exc:
                # refused, reset, DNS, and malformed HTTP (BadStatusLine, IncompleteRead)
                self.stats.count_error("connection", f"connection error: {type(exc).__name__}")
            else:
                if 300 <= status < 400:
                    # urllib would follow it with the Authorization header to any host
                    self.stats.count_error(f"redirect_{status}", f"HTTP {status} redirect not followed "
                                           "(the API key is only sent to llm_base_url); fix llm_base_url")
                    return None
                if status != 200:
                    self.stats.count_error(f"http_{status}", f"HTTP {status}")
                    if status not in RETRYABLE:
                        return None
                    retry_after = reply_headers.get("Retry-After")
                    if retry_after and retry_after.replace(".", "", 1).isdigit():
                        delay = min(float(retry_after), 60.0)
                else:
                    return self._parse(payload)
            if attempt < self.max_retries:
                self._sleep(delay)
        return None

    def _post(self, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        """One POST with a total deadline (a watchdog shuts the socket down when it passes)
        and a cap on the reply's size. No redirect is followed: http.client has none."""
        parts = urlsplit(self.url)
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(parts.hostname, parts.port, timeout=min(self.timeout_s, self.deadline_s))
        expired = threading.Event()
        held: list = []  # the socket: conn.sock is dropped once the response owns it

        def abort() -> None:
            expired.set()
            for sock in held:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # unblocks a read in progress
                except OSError:
                    pass

        watchdog = threading.Timer(self.deadline_s, abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.connect()
            held.append(conn.sock)
            if expired.is_set():
                raise _DeadlinePassed()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > self.max_reply_bytes:
                raise _TooLarge()
            chunks, size = [], 0
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_reply_bytes:
                    raise _TooLarge()
                chunks.append(chunk)
            if expired.is_set():
                raise _DeadlinePassed()
            if length and length.isdigit() and size != int(length):
                raise http.client.IncompleteRead(b"".join(chunks), int(length) - size)
            return resp.status, {k: v for k, v in resp.getheaders()}, b"".join(chunks)
        except (http.client.HTTPException, OSError):
            if expired.is_set():
                raise _DeadlinePassed() from None
            raise
        finally:
            watchdog.cancel()
            conn.close()

    def _parse(self, payload: bytes) -> dict:
        """id -> the reply's domain as given (a non-string is judged by the caller); an id
        answered twice with different labels maps to None (invalid)."""
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
            content = content.strip()
            if content.startswith("```"):  # models like to fence JSON
                content = content.strip("`").removeprefix("json").strip()
            labels = json.loads(content)["labels"]
            out: dict = {}
            for item in labels:
                if isinstance(item, dict) and "id" in item and "domain" in item:
                    key = str(item["id"])
                    out[key] = item["domain"] if key not in out or out[key] == item["domain"] else None
            return out
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self.stats.bad_json += 1
            return {}


class _DeadlinePassed(Exception):
    pass


class _TooLarge(Exception):
    pass
