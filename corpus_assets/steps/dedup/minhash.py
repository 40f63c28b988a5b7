"""MinHash signatures and LSH band keys for fuzzy document deduplication.

Method: Broder 1997 ("On the resemblance and containment of documents") MinHash over
word n-gram shingles, with the banding LSH of Indyk & Motwani 1998 / Leskovec,
Rajaraman & Ullman ("Mining of Massive Datasets", ch. 3): a signature of ``b * r``
min-hashes is cut into ``b`` bands of ``r`` rows; two documents become candidate
duplicates when all ``r`` rows of at least one band agree. For documents with Jaccard
similarity ``s`` that happens with probability ``1 - (1 - s**r)**b``, an S-curve whose
steepest point sits near ``(1/b)**(1/r)``.

RefinedWeb (Penedo et al. 2023, Sec. 3.3 and App. G) follows Lee et al. 2022
("Deduplicating Training Data Makes Language Models Better"): 9,000 hashes over word
5-grams after normalization. See ``PRESETS`` for why that is 450 bands x 20 rows.

Pipeline of one document (all deterministic given the preset's seed):

1. ``normalize_text``: lower case; NFD, combining marks dropped (accents stripped);
   punctuation and symbols (Unicode categories P* and S*, a superset of ASCII
   ``string.punctuation``) replaced by a space, so "end.Start" stays two words;
   control characters (category Cc) deleted, except those that are whitespace (tab,
   newline, U+001C..U+001F, U+0085), which separate words; whitespace collapsed to
   single spaces. Numbers follow the preset's ``numbers`` rule: ``"keep"`` (RefinedWeb:
   its paper does not mention digits), ``"digits"`` (every decimal digit -> "0") or
   ``"whole"`` (FineWeb: each number, a maximal run of decimal digits, -> one "0", as
   datatrove's normalization that FineWeb ran, ``\d+`` -> "0"). Punctuation inside a
   number separates it as it separates words everywhere here, so "$17.56" -> "0 0"
   ("1,000" -> "0 0"); datatrove deletes punctuation first and gets one "0" for both.
2. Words are the whitespace-separated tokens of the normalized text (for a language
   written without spaces, given a segmenter (``steps/segmentation``): the segmenter's
   words of the original text, each normalized, so that jieba, MeCab or ICU see the
   text before accents and marks are stripped). Each distinct
   word is hashed once to 64 bits (BLAKE2b, stable across runs and machines).
3. Shingles are word n-grams (n = 5). A shingle's 64-bit hash folds its n word
   hashes with MurmurHash3's fmix64 between steps (order-sensitive), vectorized over
   all positions. A document with fewer than n words is ONE shingle: the hash of its
   whole normalized text (an empty document is the shingle of the empty string, so
   all empty documents collide, which is correct: they are identical).
4. Each shingle hash is cut to 32 bits (its high half) and deduplicated.
5. Permutation i is the universal hash ``h_i(x) = (a_i * x + b_i) mod 2**32`` with
   ``a_i`` odd, so every ``h_i`` is a bijection of 32-bit values (a true permutation
   of the shingle-hash space); ``a_i, b_i`` come from SplitMix64 seeded by the
   preset's seed. The min-hash is ``min_x h_i(x)``, computed for all permutations and
   all shingles of a batch of documents at once in NumPy ``uint32`` arithmetic: the
   product wraps mod 2**32 by design, which is exactly the modulus, so there is no
   overflow to take care of. (datasketch < 2.0 computed ``(a*x+b) mod (2**61-1)`` and
   kept the low 32 bits, which is not a bijection and slightly inflates estimates on
   large sets; datasketch 2.0's default "affine32" scheme uses this same family on
   fmix-premixed hashes. The family is 2-universal, not provably min-wise
   independent, so its accuracy is checked empirically: the tests compare
   ``P[row match]`` with the Jaccard similarity on synthetic pairs.)
6. Band key of band j: the ``r`` rows of band j folded to one 64-bit hash (fmix64
   chain). Keys are compared only within the same band.

Signatures (``uint32``, b*r per document) are an intermediate; what is stored per
shard is the ``(num_docs, num_bands)`` ``uint64`` array of band keys, written to
Parquet as a ``fixed_size_list<uint64>[num_bands]`` column (``band_keys_to_arrow``),
from which a range of bands is read back with ``band_keys_from_arrow``.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from .hashing import fmix64, splitmix64_sequence, stable_hash64

U64 = np.uint64
# How numbers are normalized before shingling (see normalize_text).
NUMBER_RULES = ("keep", "digits", "whole")

# --------------------------------------------------------------------------- LSH math


def lsh_threshold(num_bands: int, rows_per_band: int) -> float:
    """Approximate similarity threshold of a b x r banding: ``(1/b)**(1/r)``."""
    return (1.0 / num_bands) ** (1.0 / rows_per_band)


def collision_probability(s: Union[float, np.ndarray], num_bands: int, rows_per_band: int):
    """Probability that two documents of Jaccard similarity ``s`` share >= 1 band:
    ``1 - (1 - s**r)**b``."""
    s = np.asarray(s, dtype=float)
    p = 1.0 - (1.0 - s**rows_per_band) ** num_bands
    return float(p) if p.ndim == 0 else p


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class MinHashPreset:
    """A MinHash LSH configuration: ``num_bands * rows_per_band`` permutations."""

    name: str
    num_bands: int
    rows_per_band: int
    ngram: int = 5
    seed: int = 1
    numbers: str = "keep"  # "keep" | "digits" | "whole" (see normalize_text)

    def __post_init__(self):
        if self.num_bands < 1 or self.rows_per_band < 1 or self.ngram < 1:
            raise ValueError(f"invalid MinHash preset {self}")
        if self.numbers not in NUMBER_RULES:
            raise ValueError(f"MinHash preset {self.name}: numbers must be one of {NUMBER_RULES}")

    @property
    def num_perm(self) -> int:
        return self.num_bands * self.rows_per_band

    @property
    def threshold(self) -> float:
        return lsh_threshold(self.num_bands, self.rows_per_band)

    def collision_probability(self, s):
        return collision_probability(s, self.num_bands, self.rows_per_band)

    def describe(self) -> dict:
        """Plain dict for asset metadata: the layout and its LSH threshold."""
        d = asdict(self)
        d["num_perm"] = self.num_perm
        d["lsh_threshold"] = round(self.threshold, 4)
        d["p_candidate_at"] = {
            str(s): round(self.collision_probability(s), 4) for s in (0.5, 0.7, 0.8, 0.9, 0.95)
        }
        return d


# RefinedWeb (Penedo et al. 2023) says "9,000 hashes ... 20 buckets of 450 hashes". Read
# literally as 20 bands of 450 rows, a pair is only paired when all 450 rows of a band
# agree: threshold (1/20)**(1/450) ~ 0.993, i.e. near-exact duplicates only. The method it
# follows, Lee et al. 2022 (App. A), uses 450 bands of 20 rows: threshold
# (1/450)**(1/20) ~ 0.737, which is the useful setting (a pair at s = 0.8 is caught with
# probability ~ 0.995, at s = 0.7 ~ 0.30, at s = 0.5 ~ 4e-4). We implement 450 x 20.
REFINEDWEB = MinHashPreset("refinedweb", num_bands=450, rows_per_band=20, ngram=5, seed=1)

# FineWeb (Penedo et al. 2024, datatrove): 112 hashes as 14 bands of 8 rows, word 5-grams,
# each number normalized to one 0. Threshold (1/14)**(1/8) ~ 0.719; s = 0.8 caught with
# p ~ 0.92.
FINEWEB = MinHashPreset("fineweb", num_bands=14, rows_per_band=8, ngram=5, seed=1, numbers="whole")

# GPT-3 (Brown et al. 2020, App. A): "Spark's MinHashLSH implementation with 10 hashes".
# Spark's MinHashLSH has one min-hash per hash table and ORs the tables, i.e. 10 bands of
# 1 row: threshold (1/10)**(1/1) = 0.1, so almost any overlap makes a candidate (s = 0.5:
# p ~ 0.999; s = 0.2: p ~ 0.89). Spark then filters candidates by exact Jaccard distance
# in approxSimilarityJoin; band keys alone cannot, so this preset over-clusters and is
# here for comparison only. The n-gram size is not stated in the paper; we use 5.
GPT3 = MinHashPreset("gpt3", num_bands=10, rows_per_band=1, ngram=5, seed=1)

PRESETS: dict[str, MinHashPreset] = {p.name: p for p in (REFINEDWEB, FINEWEB, GPT3)}


def get_preset(preset: Union[str, MinHashPreset]) -> MinHashPreset:
    if isinstance(preset, MinHashPreset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise KeyError(f"unknown MinHash preset {preset!r}; known: {sorted(PRESETS)}") from None


# --------------------------------------------------------------------------- normalization


@functools.lru_cache(maxsize=None)
def _translate_tables() -> tuple[dict, dict, bytes, bytes, bytes]:
    """Tables for ``translate``, built once per process by scanning the code space
    (~0.3 s):

    - non-ASCII ``str`` tables (without / with digit folding): every combining mark
      (``unicodedata.combining(c) != 0``) and every control character that is not
      whitespace (category Cc) -> deleted; every punctuation or symbol (general
      category P* or S*) -> " "; with digit folding every decimal digit (category Nd)
      -> "0";
    - ASCII ``bytes`` tables (256 entries) doing the same for ASCII characters, and the
      ASCII control characters to delete. They are applied to the UTF-8 encoding, which
      is safe because bytes of multi-byte UTF-8 sequences are all >= 0x80 and map to
      themselves.
    """
    full: dict[int, Optional[str]] = {}
    digits: dict[int, str] = {}
    for cp in range(128, sys.maxunicode + 1):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if unicodedata.combining(ch) or (cat == "Cc" and not ch.isspace()):
            full[cp] = None
        elif cat[0] in "PS":
            full[cp] = " "
        elif cat == "Nd":
            digits[cp] = "0"
    full_digits = dict(full)
    full_digits.update(digits)
    plain = bytearray(range(256))
    for cp in range(128):
        if unicodedata.category(chr(cp))[0] in "PS":
            plain[cp] = ord(" ")
    with_digits = bytearray(plain)
    for cp in range(ord("0"), ord("9") + 1):
        with_digits[cp] = ord("0")
    controls = bytes(cp for cp in range(128) if unicodedata.category(chr(cp)) == "Cc" and not chr(cp).isspace())
    return full, full_digits, bytes(plain), bytes(with_digits), controls


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
# With every digit already "0", a run of zeros is exactly a run of digits: one number.
_ZERO_RUN = re.compile(r"00+")


def normalize_text(text: str, numbers: str = "keep") -> str:
    """Normalization before shingling (see the module docstring); ``numbers`` is the
    preset's number rule: "keep", "digits" (each digit -> 0) or "whole" (each number
    -> 0)."""
    if numbers not in NUMBER_RULES:
        raise ValueError(f"numbers must be one of {NUMBER_RULES}, not {numbers!r}")
    full, full_digits, ascii_plain, ascii_digits, controls = _translate_tables()
    fold_digits = numbers != "keep"
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFD", text)
        table = full_digits if fold_digits else full
        # Only the (usually short) runs of non-ASCII characters go through the dict.
        text = _NON_ASCII_RUN.sub(lambda m: m.group().translate(table), text)
    data = text.encode("utf-8", "surrogatepass").translate(ascii_digits if fold_digits else ascii_plain, controls)
    out = " ".join(data.decode("utf-8", "surrogatepass").split())
    if numbers == "whole" and "00" in out:
        out = _ZERO_RUN.sub("0", out)
    return out


# --------------------------------------------------------------------------- shingling

_C_SHINGLE = U64(0x9E3779B97F4A7C15)
_WORD_CACHE: dict[str, int] = {}
_WORD_CACHE_MAX = 1 << 20


def _word_hashes(words: Sequence[str]) -> np.ndarray:
    """Stable 64-bit hash of each word; a process-wide memo avoids re-hashing common
    words (it only memoizes, so results never depend on what was seen before)."""
    cache = _WORD_CACHE
    if len(cache) > _WORD_CACHE_MAX:
        cache.clear()
    get = cache.get
    out = list(map(get, words))
    if None in out:
        for i, h in enumerate(out):
            if h is None:
                w = words[i]
                h = get(w)
                if h is None:
                    h = cache[w] = stable_hash64(w)
                out[i] = h
    return np.array(out, dtype=np.uint64)


def normalized_words(text: str, numbers: str = "keep", segmenter=None) -> list[str]:
    """The words MinHash shingles: ``normalize_text(text).split()``, or with a
    segmenter (a language written without spaces) its words of ``text``, normalized."""
    if segmenter is None:
        return normalize_text(text, numbers).split()
    return normalize_text(" ".join(segmenter.words(text)), numbers).split()


def shingle_hashes64(text: str, preset: Union[str, MinHashPreset] = REFINEDWEB, *, normalized: bool = False,
                     segmenter=None) -> np.ndarray:
    """64-bit hashes of the document's word n-gram shingles, sorted and unique.

    Exact Jaccard similarity between two documents is the Jaccard similarity of these
    sets (up to 64-bit collisions): the ground truth against which MinHash is measured.
    """
    preset = get_preset(preset)
    if segmenter is not None and not normalized:
        norm = " ".join(normalized_words(text, preset.numbers, segmenter))
    else:
        norm = text if normalized else normalize_text(text, preset.numbers)
    return np.unique(_shingle_hashes64_raw(norm, preset.ngram))


def _shingle_hashes64_raw(norm: str, n: int) -> np.ndarray:
    words = norm.split()
    if len(words) < n:
        # Short document: the whole normalized text is a single shingle.
        return fmix64(np.array([stable_hash64(norm)], dtype=np.uint64))
    wh = _word_hashes(words)
    count = len(words) - n + 1
    acc = wh[:count].copy()
    for j in range(1, n):
        acc = fmix64(acc * _C_SHINGLE + wh[j : j + count])
    return acc


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays."""
    if a.size == 0 and b.size == 0:
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


# --------------------------------------------------------------------------- MinHasher

# Work buffers hold at most this many uint32 elements (1 MiB): sized to stay in cache.
_BLOCK_ELEMENTS = 1 << 18
_C_BAND0 = U64(0x243F6A8885A308D3)
_C_BAND1 = U64(0xD6E8FEB86659FD93)


class MinHasher:
    """Computes signatures and band keys for one preset. Stateless apart from the
    permutation parameters; safe to share, cheap to build (``get_minhasher`` caches)."""

    def __init__(self, preset: Union[str, MinHashPreset] = REFINEDWEB):
        self.preset = get_preset(preset)
        p = self.preset.num_perm
        seed = self.preset.seed
        # a_i odd => x -> a_i*x + b_i is a bijection mod 2**32.
        self.a = (splitmix64_sequence(seed, p, stream=1) >> U64(32)).astype(np.uint32) | np.uint32(1)
        self.b = (splitmix64_sequence(seed, p, stream=2) >> U64(32)).astype(np.uint32)
        self._a_col = self.a[:, None]
        self._b_col = self.b[:, None]

    # -- shingles
    def shingles32(self, text: str, segmenter=None) -> np.ndarray:
        """The 32-bit shingle values MinHash runs over (sorted, unique)."""
        norm = " ".join(normalized_words(text, self.preset.numbers, segmenter))
        h64 = _shingle_hashes64_raw(norm, self.preset.ngram)
        return np.unique((h64 >> U64(32)).astype(np.uint32))

    # -- signatures
    def signature(self, text: str) -> np.ndarray:
        """``uint32[num_perm]`` signature of one document."""
        return self.signatures([text])[0]

    def signatures(self, texts: Iterable[str], segmenters: Optional[Sequence] = None) -> np.ndarray:
        """``uint32[num_docs, num_perm]`` signatures, vectorized over a batch.

        Same values as ``signatures_from_shingles([shingles32(t) for t in texts])``, but
        the words of the whole batch are hashed and folded into shingles in one pass
        (windows that would straddle two documents are computed and discarded), and
        duplicate shingles are not removed first (they cannot change a minimum).
        ``segmenters``: per text, None (whitespace words) or the segmenter of its language.
        """
        n = self.preset.ngram
        numbers = self.preset.numbers
        if segmenters is None:
            words_per_doc = [normalize_text(t, numbers).split() for t in texts]
        else:
            words_per_doc = [normalized_words(t, numbers, seg) for t, seg in zip(texts, segmenters)]
        long_words: list[str] = []
        starts: list[int] = []
        for words in words_per_doc:
            if len(words) >= n:
                starts.append(len(long_words))
                long_words.extend(words)
            else:
                starts.append(-1)
        acc = None
        if long_words:
            wh = _word_hashes(long_words)
            count = wh.size - n + 1
            acc = wh[:count].copy()
            for j in range(1, n):
                acc = fmix64(acc * _C_SHINGLE + wh[j : j + count])
            acc = (acc >> U64(32)).astype(np.uint32)
        shingles = []
        for words, start in zip(words_per_doc, starts):
            if start < 0:
                h = fmix64(np.array([stable_hash64(" ".join(words))], dtype=np.uint64))
                shingles.append((h >> U64(32)).astype(np.uint32))
            else:
                shingles.append(acc[start : start + len(words) - n + 1])
        return self.signatures_from_shingles(shingles)

    def signatures_from_shingles(self, shingles: Sequence[np.ndarray]) -> np.ndarray:
        """Signatures of documents given as arrays of 32-bit shingle values. An empty
        array (impossible from text, see ``shingles32``) gets the all-0xFFFFFFFF row."""
        P = self.preset.num_perm
        shingles = [np.asarray(s, dtype=np.uint32).ravel() for s in shingles]
        empty = [i for i, s in enumerate(shingles) if s.size == 0]
        if empty:
            out = np.full((len(shingles), P), np.iinfo(np.uint32).max, dtype=np.uint32)
            keep = [i for i, s in enumerate(shingles) if s.size]
            if keep:
                out[keep] = self.signatures_from_shingles([shingles[i] for i in keep])
            return out
        out = np.empty((len(shingles), P), dtype=np.uint32)
        # Group documents into chunks of ~target shingles, then run all permutations over
        # the chunk in blocks of rows so that the (rows, shingles) buffer stays small.
        target = max(2048, _BLOCK_ELEMENTS // P)
        i = 0
        n = len(shingles)
        while i < n:
            j = i
            total = 0
            while j < n and (j == i or total + shingles[j].size <= target):
                total += shingles[j].size
                j += 1
            x = shingles[i] if j == i + 1 else np.concatenate(shingles[i:j])
            sizes = np.fromiter((s.size for s in shingles[i:j]), dtype=np.int64, count=j - i)
            offsets = np.zeros(j - i, dtype=np.int64)
            np.cumsum(sizes[:-1], out=offsets[1:])
            self._minhash_chunk(x, offsets, out[i:j])
            i = j
        return out

    def _minhash_chunk(self, x: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
        P = self.preset.num_perm
        T = x.size
        rows = max(1, min(P, _BLOCK_ELEMENTS // max(T, 1)))
        buf = np.empty((rows, T), dtype=np.uint32)
        x_row = x[None, :]
        single = offsets.size == 1
        for s in range(0, P, rows):
            e = min(P, s + rows)
            blk = buf[: e - s]
            np.multiply(self._a_col[s:e], x_row, out=blk)  # wraps mod 2**32
            np.add(blk, self._b_col[s:e], out=blk)
            if single:
                out[0, s:e] = blk.min(axis=1)
            else:
                out[:, s:e] = np.minimum.reduceat(blk, offsets, axis=1).T

    # -- band keys
    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """``uint64[num_docs, num_bands]``: per band, a 64-bit hash of its rows."""
        sig = np.asarray(signatures, dtype=np.uint32)
        if sig.ndim == 1:
            sig = sig[None, :]
        b, r = self.preset.num_bands, self.preset.rows_per_band
        rows = sig.reshape(sig.shape[0], b, r)
        acc = np.full((sig.shape[0], b), _C_BAND0, dtype=np.uint64)
        for j in range(r):
            acc = fmix64(acc * _C_BAND1 + rows[:, :, j].astype(np.uint64))
        return acc

    def band_keys_for_texts(self, texts: Iterable[str], batch_size: int = 256) -> np.ndarray:
        """Band keys of many documents, computed ``batch_size`` at a time so that only
        one batch of signatures is ever held."""
        chunks = []
        batch: list[str] = []
        for t in texts:
            batch.append(t)
            if len(batch) >= batch_size:
                chunks.append(self.band_keys(self.signatures(batch)))
                batch = []
        if batch:
            chunks.append(self.band_keys(self.signatures(batch)))
        if not chunks:
            return np.empty((0, self.preset.num_bands), dtype=np.uint64)
        return np.concatenate(chunks)


@functools.lru_cache(maxsize=16)
def get_minhasher(preset: Union[str, MinHashPreset] = REFINEDWEB) -> MinHasher:
    return MinHasher(get_preset(preset))


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of agreeing rows: the MinHash estimate of Jaccard similarity."""
    return float(np.mean(np.asarray(sig_a) == np.asarray(sig_b)))


# --------------------------------------------------------------------------- storage


def band_keys_to_arrow(keys: np.ndarray):
    """``(n, num_bands)`` uint64 -> ``pa.FixedSizeListArray`` (one list per document)."""
    import pyarrow as pa

    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    n, b = keys.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(keys.reshape(-1), type=pa.uint64()), b)


def band_keys_from_arrow(column, band_start: int = 0, band_stop: Optional[int] = None) -> np.ndarray:
    """Read bands ``[band_start, band_stop)`` of a band-key column back as a fresh
    ``(n, band_stop - band_start)`` uint64 array (only that slice is copied)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        parts = [band_keys_from_arrow(c, band_start, band_stop) for c in column.chunks]
        if not parts:
            return np.empty((0, 0), dtype=np.uint64)
        return np.concatenate(parts)
    b = column.type.list_size
    stop = b if band_stop is None else band_stop
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.reshape(len(column), b)[:, band_start:stop])


def describe_presets() -> dict:
    """Every preset's layout and LSH threshold, for metadata and docs."""
    return {name: p.describe() for name, p in PRESETS.items()}


__all__ = [
    "MinHashPreset",
    "MinHasher",
    "PRESETS",
    "REFINEDWEB",
    "FINEWEB",
    "GPT3",
    "get_preset",
    "get_minhasher",
    "lsh_threshold",
    "collision_probability",
    "normalize_text",
    "shingle_hashes64",
    "jaccard",
    "estimate_jaccard",
    "band_keys_to_arrow",
    "band_keys_from_arrow",
    "describe_presets",
]
