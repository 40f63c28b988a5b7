"""CCNet's text normalizations (Wenzek et al. 2020, section 3; cc_net's
``text_normalizer.py``), written here from its definitions:

- :func:`normalize_for_lm`, applied before SentencePiece when training and querying the
  language model: strip, lower-case, accents removed (NFD, combining marks dropped), every
  Unicode decimal digit -> ``0``, the listed Unicode punctuation replaced by its ASCII
  form, control characters (U+0000-U+001F, U+007F-U+009F) removed;
- :func:`normalize_for_dedup`, the line dedup key: strip, lower-case, digits -> ``0``,
  the same punctuation and control characters *removed* (accents kept).

The punctuation list is CCNet's (full-width and typographic forms of ASCII punctuation).
"""

from __future__ import annotations

import re
import unicodedata

# CCNet's UNICODE_PUNCT: the character and the ASCII it stands for.
UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"',
    "１": '"', "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":",
    "？": "?", "！": "!", "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ",
    "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]",
    "％": "%", "►": "-",
}
CONTROL_CHARS = [chr(c) for c in (*range(0, 32), *range(127, 160))]

_REPLACE_PUNCT = str.maketrans({**UNICODE_PUNCT, **{c: None for c in CONTROL_CHARS}})
_REMOVE_PUNCT = str.maketrans({c: None for c in (*UNICODE_PUNCT, *CONTROL_CHARS)})
# re's \d is every Unicode decimal digit (Nd), as in CCNet
_DIGIT = re.compile(r"\d")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def normalize_for_lm(line: str) -> str:
    line = line.strip()
    if not line:
        return line
    line = _DIGIT.sub("0", _strip_accents(line.lower())).translate(_REPLACE_PUNCT)
    if not line.isascii():
        # a lone surrogate (possible in a Python str, never in Arrow's UTF-8) would make
        # SentencePiece refuse the whole batch: it becomes U+FFFD
        line = line.encode("utf-8", "replace").decode("utf-8")
    return line


def normalize_for_dedup(line: str) -> str:
    line = line.strip()
    if not line:
        return line
    return _DIGIT.sub("0", line.lower()).translate(_REMOVE_PUNCT)
