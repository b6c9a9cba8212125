"""Near-duplicate search on short texts: shingles, vectorised MinHash, banded LSH, exact Jaccard verification.

Pure numpy (and scipy for connected components); no database. :mod:`tooldistill.curate.dedup` stores what
this finds; :mod:`tooldistill.curate.split` re-runs it across splits as an independent leakage check.

Why vectorised instead of datasketch's ``MinHash``/``MinHashLSH`` objects: one Python object per query and a
Python loop per shingle cost ~60 s per 100k queries on two cores (``benchmarks/dedup_bench.py`` measures both
side by side). The permutation scheme is datasketch 2.0's ``affine32`` (``a * h + b mod 2**32``, ``a`` odd) over
a 32-bit MurmurHash3-finalised shingle hash, so the estimates have the same statistics.

The shingle set of a query (after :func:`dedup_key`) is the union of its words and the character 3-grams
*inside* each space-padded word. Grams never span two words, so reordered words keep their grams (a reorder
changes nothing), a typo changes about three grams, and an added filler word adds its own few.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np


_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")
_M32 = np.uint64(0xFFFFFFFF)
_GRAM_MULT = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))
_BAND_MULT = np.uint64(0x100000001B3)
ESTIMATE_MARGIN = 0.15
"""Candidates whose MinHash estimate is this far below the threshold are not verified (3.4 sd at 128 perms)."""
VERIFY_CHUNK = 8192


_FILLER = r"(?:please|pls|plz|thanks|thank you|thx|ty|hey|hi|hiya|hello|yo|um+|uh+|hmm+|ok|okay|lol|cheers)"
_LEADING_FILLER = re.compile(rf"^(?:{_FILLER} )+")
_TRAILING_FILLER = re.compile(rf"(?: {_FILLER})+$")


def dedup_key(text: str) -> str:
    """Normalise harder than :func:`~tooldistill.textnorm.normalize_text` for duplicate search.

    Lower case, NFKC, apostrophes dropped (``what's`` = ``whats``), every other run of punctuation or symbols
    turned into one space, whitespace collapsed, and greetings and politeness at either end dropped ("hey",
    "please", "thanks", ...: they carry no request). Two queries with the same key are exact duplicates.
    """
    # NFKC + lower case as normalize_text, whose whitespace and edge-punctuation rules the next line subsumes
    text = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES)).strip()
    core = _TRAILING_FILLER.sub("", _LEADING_FILLER.sub("", text))
    return core or text


@dataclass(frozen=True)
class Shingles:
    """Sorted, unique 32-bit shingle hashes of ``n`` documents in CSR form (doc ``i`` is ``values[indptr[i]:indptr[i+1]]``)."""

    indptr: np.ndarray
    values: np.ndarray

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @cached_property
    def sizes(self) -> np.ndarray:
        return np.diff(self.indptr)

    def doc(self, i: int) -> np.ndarray:
        return self.values[self.indptr[i]:self.indptr[i + 1]]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy 2's hash-based unique is several times slower on millions of ints)."""
    values = np.sort(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def shingle(keys: list[str], *, char_n: int = 3, words: bool = True) -> Shingles:
    """Hash the word and in-word character ``char_n``-gram shingles of already-normalised keys.

    Args:
        keys: texts after :func:`dedup_key`.
        char_n: character gram length (2 to 3); grams are taken inside each space-padded word.
        words: add the words themselves as shingles.

    Returns: the shingle sets as :class:`Shingles` (deterministic: the same text always gives the same hashes).
    """
    if not 2 <= char_n <= 3:
        raise ValueError("char_n must be 2 or 3")
    n = len(keys)
    padded = [f" {k} " for k in keys]
    doc_len = np.fromiter((len(p) + 1 for p in padded), dtype=np.int64, count=n)
    codes = np.frombuffer(("\x00".join(padded) + "\x00").encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc_of = np.repeat(np.arange(n, dtype=np.uint64), doc_len)
    m = len(codes) - char_n + 1
    grams = [codes[j:j + m] for j in range(char_n)]
    ok = np.ones(m, dtype=bool)
    for g in grams:
        ok &= g != 0
    for g in grams[1:-1]:
        ok &= g != 32  # an interior space would make the gram span two words
    all_space = np.ones(m, dtype=bool)
    for g in grams:
        all_space &= g == 32
    ok &= ~all_space  # only an empty key pads to all spaces
    h = np.zeros(m, dtype=np.uint64)
    for g, mult in zip(grams, _GRAM_MULT):
        h = (h + g) * mult
    h = _fmix64(h[ok]) >> np.uint64(32)
    docs = doc_of[:m][ok]
    if words:
        split = [k.split() for k in keys]
        counts = np.fromiter(map(len, split), dtype=np.int64, count=n)
        flat = [w for ws in split for w in ws]
        if flat:
            crc = np.fromiter(map(zlib.crc32, map(str.encode, flat)), dtype=np.uint64, count=len(flat))
            # the high tag keeps word hashes apart from gram hashes
            h = np.concatenate([h, _fmix64(crc | np.uint64(1 << 40)) >> np.uint64(32)])
            docs = np.concatenate([docs, np.repeat(np.arange(n, dtype=np.uint64), counts)])
    combined = sorted_unique((docs << np.uint64(32)) | h)
    doc_ids = (combined >> np.uint64(32)).astype(np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(doc_ids, minlength=n), out=indptr[1:])
    return Shingles(indptr=indptr, values=(combined & _M32).astype(np.uint32))


def minhash(sh: Shingles, *, num_perm: int = 128, seed: int = 0, chunk: int = 1 << 16) -> np.ndarray:
    """MinHash signatures, shape ``(n, num_perm)`` uint32; documents with no shingles get all-ones rows.

    The fraction of equal columns of two rows estimates the Jaccard similarity of their shingle sets.
    """
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 1 << 32, num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    sig = np.full((sh.n, num_perm), 0xFFFFFFFF, dtype=np.uint32)
    nonempty = np.flatnonzero(sh.sizes > 0)
    if not len(nonempty):
        return sig
    start = 0
    while start < len(nonempty):
        # take whole documents until about ``chunk`` shingles, so the (shingles x perms) block stays small
        first = sh.indptr[nonempty[start]]
        stop = int(np.searchsorted(sh.indptr[nonempty + 1], first + chunk, side="right"))
        stop = max(stop, start + 1)
        docs = nonempty[start:stop]
        lo, hi = sh.indptr[docs[0]], sh.indptr[docs[-1] + 1]
        # (perms x shingles) so the min runs along contiguous memory: six times faster than the transpose
        block = a[:, None] * sh.values[None, lo:hi]
        block += b[:, None]
        sig[docs] = np.minimum.reduceat(block, sh.indptr[docs] - lo, axis=1).T
        start = stop
    return sig


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows for a recall-first LSH: candidates at the threshold are found with probability >= 0.995.

    Verification by exact Jaccard removes the false candidates, so recall is what the banding is tuned for;
    among the settings that reach it, the one with the fewest candidates at half the threshold wins.
    """
    best = None
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        recall = 1 - (1 - threshold ** rows) ** bands
        if recall < 0.995:
            continue
        false_rate = 1 - (1 - (threshold / 2) ** rows) ** bands
        if best is None or false_rate < best[0]:
            best = (false_rate, bands, rows)
    return (best[1], best[2]) if best else (num_perm, 1)


def band_pairs(sig: np.ndarray, band: int, rows: int, idx: np.ndarray, *, neighbours: int,
               rng: np.random.Generator) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, of documents ``idx`` that share LSH band ``band``, as an ``(m, 2)`` array.

    Each document is paired with the ``neighbours`` members before it in its bucket, in a random order drawn
    per band: a bucket of a thousand template instances costs ``1000 * neighbours`` pairs instead of half a
    million, and the many bands a true near-duplicate pair shares give it many draws.
    """
    block = sig[idx, band * rows:(band + 1) * rows].astype(np.uint64)
    key = np.zeros(len(idx), dtype=np.uint64)
    for j in range(rows):
        key = (key ^ block[:, j]) * _BAND_MULT + np.uint64(j + 1)
    perm = rng.permutation(len(idx))
    order = perm[np.argsort(key[perm], kind="stable")]
    ks = key[order]
    new = np.ones(len(ks), dtype=bool)
    new[1:] = ks[1:] != ks[:-1]
    positions = np.arange(len(ks))
    start = np.maximum.accumulate(np.where(new, positions, 0))
    count = np.minimum(positions - start, neighbours)
    total = int(count.sum())
    if not total:
        return np.zeros((0, 2), dtype=np.int64)
    right = np.repeat(positions, count)
    back = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    left = right - 1 - back
    pairs = np.stack([idx[order[left]], idx[order[right]]], axis=1).astype(np.int64)
    pairs.sort(axis=1)
    return pairs


def unique_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    """Distinct rows of an ``(m, 2)`` array of document indexes below ``n``."""
    if not len(pairs):
        return pairs
    codes = sorted_unique(pairs[:, 0] * np.int64(n) + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray, *, chunk: int = 1 << 15) -> np.ndarray:
    """MinHash estimate of the Jaccard similarity of each pair (share of equal signature columns)."""
    out = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        out[s:s + chunk] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


def _gather(sh: Shingles, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shingles of ``docs`` tagged with their position in ``docs``: sorted keys ``pos << 32 | hash``, and sizes."""
    count = sh.sizes[docs]
    total = int(count.sum())
    first = np.cumsum(count) - count
    at = np.repeat(sh.indptr[docs] - first, count) + np.arange(total)
    owner = np.repeat(np.arange(len(docs), dtype=np.uint64), count)
    return (owner << np.uint64(32)) | sh.values[at].astype(np.uint64), count


def exact_jaccard(sh: Shingles, pairs: np.ndarray, *, chunk: int = 1 << 16) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair (vectorised: a sorted merge per chunk of pairs)."""
    out = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        left, n_left = _gather(sh, p[:, 0])
        right, n_right = _gather(sh, p[:, 1])
        inter = np.zeros(len(p), dtype=np.int64)
        if len(left) and len(right):
            at = np.minimum(np.searchsorted(right, left), len(right) - 1)
            hit = right[at] == left
            inter = np.bincount((left[hit] >> np.uint64(32)).astype(np.int64), minlength=len(p))
        union = n_left + n_right - inter
        out[s:s + chunk] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


@dataclass(frozen=True)
class NearDupParams:
    """How near-duplicates are found; recorded with every dedup run and split."""

    threshold: float = 0.8
    num_perm: int = 128
    char_n: int = 2
    words: bool = True
    seed: int = 0
    neighbours: int = 16

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "num_perm": self.num_perm, "char_n": self.char_n,
                "words": self.words, "seed": self.seed, "neighbours": self.neighbours}

    @classmethod
    def from_dict(cls, data: dict) -> "NearDupParams":
        return cls(**{k: data[k] for k in cls().to_dict() if k in data})


@dataclass
class Sketch:
    """The shingles and MinHash signatures of a list of keys: computed once, searched several ways."""

    keys: list[str]
    shingles: Shingles
    sig: np.ndarray
    params: NearDupParams

    def exact(self, pairs: np.ndarray) -> np.ndarray:
        return exact_jaccard(self.shingles, pairs)

    @classmethod
    def build(cls, keys: list[str], params: NearDupParams, *, step=None) -> "Sketch":
        step = step or (lambda stage: None)
        step("shingle")
        sh = shingle(keys, char_n=params.char_n, words=params.words)
        step("minhash")
        return cls(keys, sh, minhash(sh, num_perm=params.num_perm, seed=params.seed), params)

    def plausible(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pairs whose MinHash estimate is within ``ESTIMATE_MARGIN`` of the threshold, most similar first."""
        est = estimated_jaccard(self.sig, pairs)
        keep = est >= self.params.threshold - ESTIMATE_MARGIN
        order = np.argsort(-est[keep], kind="stable")
        return pairs[keep][order], est[keep][order]

    def verify(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep the pairs whose exact Jaccard reaches the threshold; returns ``(pairs, similarities)``.

        The MinHash estimate first drops implausible pairs, so the exact (Python set) comparison runs only on
        pairs that may pass.
        """
        likely, _ = self.plausible(pairs)
        sim = self.exact(likely)
        keep = sim >= self.params.threshold
        return likely[keep], sim[keep]


@dataclass
class PairSearch:
    """Verified near-duplicate pairs (enough to connect every cluster), with the figures of the search."""

    pairs: np.ndarray
    similarity: np.ndarray
    candidates: int
    sketch: Sketch


def _bands(sketch: Sketch) -> tuple[int, int, np.ndarray, np.random.Generator]:
    bands, rows = lsh_params(sketch.params.threshold, sketch.params.num_perm)
    idx = np.flatnonzero(sketch.shingles.sizes > 0)
    return bands, rows, idx, np.random.default_rng(sketch.params.seed + 1)


def near_duplicate_pairs(keys: list[str], params: NearDupParams = NearDupParams(), *, progress=None) -> PairSearch:
    """Find near-duplicate pairs of keys: exact shingle Jaccard at least ``params.threshold``.

    LSH proposes candidates band by band (recall-first banding); a candidate whose two documents are already
    connected by verified pairs is skipped, so a dense template cluster is verified once, not quadratically.
    The result therefore holds a spanning set of verified pairs: every cluster is connected, but not every
    similar pair is listed. ``progress`` (optional) is called with a stage name as each stage starts.
    """
    step = progress or (lambda stage: None)
    sketch = Sketch.build(keys, params, step=step)
    step("lsh")
    n = len(keys)
    bands, rows, idx, rng = _bands(sketch)
    label = np.arange(n)
    found, sims, checked = [], [], 0
    for band in range(bands):
        pairs = band_pairs(sketch.sig, band, rows, idx, neighbours=params.neighbours, rng=rng)
        pairs = unique_pairs(pairs[label[pairs[:, 0]] != label[pairs[:, 1]]], n)
        checked += len(pairs)
        likely, _ = sketch.plausible(pairs)
        # most similar first, in chunks: once a dense cluster is connected, its other pairs are skipped unverified
        for s in range(0, len(likely), VERIFY_CHUNK):
            chunk = likely[s:s + VERIFY_CHUNK]
            chunk = chunk[label[chunk[:, 0]] != label[chunk[:, 1]]]
            sim = sketch.exact(chunk)
            good = sim >= params.threshold
            if good.any():
                found.append(chunk[good])
                sims.append(sim[good])
                label = components(n, np.concatenate(found))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    sim = np.concatenate(sims) if sims else np.zeros(0, dtype=np.float32)
    return PairSearch(pairs=pairs, similarity=sim, candidates=checked, sketch=sketch)


def cross_group_pairs(sketch: Sketch, group: np.ndarray, *, neighbours: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicate pairs whose documents lie in different groups (``group[i] < 0``: not checked).

    Every band is searched (no skipping), with a wider bucket window than clustering uses, and only pairs that
    straddle two groups are verified. Returns ``(pairs, similarities)``.
    """
    n = len(sketch.keys)
    bands, rows, idx, rng = _bands(sketch)
    idx = idx[group[idx] >= 0]
    found = [np.zeros((0, 2), dtype=np.int64)]
    for band in range(bands):
        pairs = band_pairs(sketch.sig, band, rows, idx, neighbours=neighbours, rng=rng)
        found.append(pairs[group[pairs[:, 0]] != group[pairs[:, 1]]])
    pairs = unique_pairs(np.concatenate(found), n)
    return sketch.verify(pairs)
def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes given undirected edges ``pairs``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(pairs):
        return np.arange(n)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]
