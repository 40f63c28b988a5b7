"""The ``llm`` annotator: FineFineWeb's LLM labelling through any OpenAI-compatible
chat-completions endpoint (vLLM, llama.cpp server, a hosted API).

- Inputs go in batches; the model answers a JSON object ``{"labels": [{"id", "domain"}]}``.
- Every answer is validated against the taxonomy: a label outside it (or ``none``), a
  missing id, or a reply that is not JSON is counted (``invalid``, ``missing``,
  ``bad_json``) and never trusted.
- HTTP 429 and 5xx, timeouts and connection errors are retried with exponential backoff
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
import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, MutableMapping, Optional, Sequence

from .seeds import NONE_LABEL

PROMPT_ROOT = ("You label websites by topic. For each root URL, answer the single domain of the "
               "taxonomy its pages are mostly about, or \"none\" if no domain fits.")
PROMPT_DOC = ("You label web documents by topic. For each document, answer the single domain of the "
              "taxonomy it is about, or \"none\" if no domain fits.")
INVALID = "__invalid__"
RETRYABLE = {429, 500, 502, 503, 504}


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

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("requests", "retries", "cached", "labelled", "invalid", "missing",
                                              "bad_json", "failed")} | {"errors": dict(self.errors)}


def cache_key(text: str, prompt_version: str, model: str, kind: str) -> str:
    return hashlib.sha256(f"{kind}\x00{prompt_version}\x00{model}\x00{text}".encode()).hexdigest()


class LlmAnnotator:
    def __init__(self, base_url: str, model: str, domains: Sequence[str], api_key: Optional[str] = None,
                 batch_size: int = 16, timeout_s: float = 30.0, max_retries: int = 4, backoff_s: float = 1.0,
                 prompt_version: str = "v1", cache: Optional[MutableMapping[str, str]] = None,
                 sleep: Callable[[float], None] = time.sleep, max_chars: int = 1500):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.domains = list(domains)
        self._allowed = set(self.domains) | {NONE_LABEL}
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
                   backoff_s=cfg.llm_backoff_s, prompt_version=cfg.llm_prompt_version, cache=cache)

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
                continue
            for i, (key, text) in enumerate(batch):
                label = replies.get(str(i))
                if label is None:
                    self.stats.missing += 1
                    out[text] = None
                    continue  # not an answer: not cached, asked again next run
                if label not in self._allowed:
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

    def _ask(self, batch, kind: str) -> Optional[dict[str, str]]:
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
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    payload = resp.read()
            except urllib.error.HTTPError as exc:
                self.stats.count_error(f"http_{exc.code}")
                if exc.code not in RETRYABLE:
                    return None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), 60.0)
            except (TimeoutError, socket.timeout):
                self.stats.count_error("timeout")
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                self.stats.count_error("timeout" if isinstance(reason, (TimeoutError, socket.timeout)) else "connection")
            else:
                return self._parse(payload)
            if attempt < self.max_retries:
                self._sleep(delay)
        return None

    def _parse(self, payload: bytes) -> dict[str, str]:
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
            content = content.strip()
            if content.startswith("```"):  # models like to fence JSON
                content = content.strip("`").removeprefix("json").strip()
            labels = json.loads(content)["labels"]
            return {str(item["id"]): str(item["domain"]).strip().lower() for item in labels
                    if isinstance(item, dict) and "id" in item and "domain" in item}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self.stats.bad_json += 1
            return {}
