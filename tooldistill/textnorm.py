"""Text normalisation shared by every stage: one definition of "the same query"."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\s\"'`.,!?;:()\[\]{}-]+|[\s\"'`.,!?;:()\[\]{}-]+$")


def normalize_text(text: str) -> str:
    """Normalise a query for exact matching: NFKC, lower case, collapsed whitespace, edge punctuation removed.

    Two queries with the same normalised text are exact duplicates; the oracle of the fake teacher and the
    ``queries.norm_hash`` column use this form.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _SPACE.sub(" ", text)
    return _EDGE_PUNCT.sub("", text)


def text_hash(text: str) -> str:
    """Stable 16-hex-char hash of the normalised text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]
