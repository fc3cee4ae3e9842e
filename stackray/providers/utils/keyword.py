"""BM25 keyword scoring, for vector IO providers whose database has no full-text search.

`BM25Index` keeps term statistics in memory and is updated incrementally; providers
rebuild it from their stored chunks when they load.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter

_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class BM25Index:
    """Okapi BM25 over documents keyed by id (k1=1.2, b=0.75).

    Term postings make a search cost proportional to the documents containing the query's
    terms, not to the whole collection.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._docs: dict[str, Counter[str]] = {}
        self._lengths: dict[str, int] = {}
        self._postings: dict[str, dict[str, int]] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, doc_id: str, text: str) -> None:
        self.remove(doc_id)
        terms = Counter(tokenize(text))
        self._docs[doc_id] = terms
        length = sum(terms.values())
        self._lengths[doc_id] = length
        self._total_length += length
        for term, tf in terms.items():
            self._postings.setdefault(term, {})[doc_id] = tf

    def remove(self, doc_id: str) -> None:
        terms = self._docs.pop(doc_id, None)
        if terms is None:
            return
        self._total_length -= self._lengths.pop(doc_id)
        for term in terms:
            posting = self._postings.get(term)
            if posting is not None:
                posting.pop(doc_id, None)
                if not posting:
                    del self._postings[term]

    def search(
        self, query: str, k: int, allowed: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """The `k` best-scoring documents for `query` (score > 0), best first; `allowed`
        restricts the candidates (e.g. to those passing a metadata filter)."""
        terms = set(tokenize(query))
        n = len(self._docs)
        if not terms or n == 0 or k <= 0:
            return []
        avg = self._total_length / n
        scores: dict[str, float] = {}
        for t in terms:
            posting = self._postings.get(t)
            if not posting:
                continue
            df = len(posting)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for doc_id, f in posting.items():
                if allowed is not None and doc_id not in allowed:
                    continue
                norm = self.k1 * (1 - self.b + self.b * self._lengths[doc_id] / (avg or 1.0))
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * f * (self.k1 + 1) / (f + norm)
        ranked = [(d, s) for d, s in scores.items() if s > 0]
        if len(ranked) > k:
            ranked = heapq.nsmallest(k, ranked, key=lambda s: (-s[1], s[0]))
        else:
            ranked.sort(key=lambda s: (-s[1], s[0]))
        return ranked


def bm25_rank(query: str, texts: dict[str, str], k: int) -> list[tuple[str, float]]:
    """One-shot BM25 over `texts` (id -> text)."""
    index = BM25Index()
    for doc_id, text in texts.items():
        index.add(doc_id, text)
    return index.search(query, k)


def reciprocal_rank_fusion(
    rankings: list[list[str]], k: int = 60, weights: list[float] | None = None
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(id) = sum_i w_i / (k + rank_i(id)), rank from 1."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda s: (-s[1], s[0]))
