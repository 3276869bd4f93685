"""Query search for perturbation candidates and the dominance test: deviations from T-Miner.

T-Miner takes its perturbation candidates from the generator's decodes only
(``helper_candidates_topk.py``) and calls a candidate a trigger when DBSCAN finds it far from
random auxiliary phrases. On the benchmark zoo (1-3 rare words at 1-10% poisoning) that
recovered the trigger of 7 of 20 trojaned models: the generator, trained for a few CPU epochs,
often never wrote a trigger word, and DBSCAN flagged strong natural phrases of every clean CNN.
This module queries the suspicious model on the same synthetic source-class sentences the
generator uses (no training data, no clean inputs, black-box queries; gains are in the logit
margin of the target class):

1. :func:`word_gains`: every vocabulary word is inserted at a fixed random position of each
   of ``n_word_sentences`` synthetic source sentences; its gain is the mean increase of the
   target margin. A trigger word is one whose insertion pushes *any* source sentence to the
   target: on 19 of the 20 trojaned benchmark models a trigger word had the top gain (rank 1
   on the 20th; log-probability gains on 16 sentences, measured while designing this).
2. :func:`beam_phrases`: a beam search over phrases of up to 3 distinct words, built from the
   best single words and the best neighbours of the current best phrase, scored on all
   sentences, so multi-word triggers are assembled word by word.
3. :func:`search` adds the **dominance test**: for each length k, the best phrase's gain over
   the gain of the best phrase that uses none of the words of any best phrase (found by the
   same search). Natural sentiment is spread over many about equally strong words, so on clean
   models the best phrase barely beats the next (dominance at most 1.21 on 12 held-out clean
   models, among phrases that pass the flip filter, but 1.31 on one clean benchmark model); a
   trigger is one phrase far stronger than everything else (1.31-2.0 on 18 of 20 trojaned
   benchmark models).

Issue 19, comparing a phrase with natural phrases of its own length (``reference="own"``, an
option, off in the detector: ``"best"`` is its default and the rule before): the alternative of length k is the best
phrase of length k, found by the same beam search, that avoids the words of the best phrase
of length k only, instead of the words of every best phrase (of lengths 1-3). The old rule
removed the 3-5 strongest natural words from every reference, so a clean model with a few
strong sentiment words (the first fresh zoo's clean CNN 5025: "poorly", "mcdormand", "fails")
compared "poorly mcdormand" with phrases of its 4th-6th strongest words (1.298 on the
development re-run; 1.251 against its own-length reference "90 fails"). But trojans lose as
much (development CNN 3, "presenting infinitely cameos": 1.396 -> 1.247; ``tminer.py``).

Limits: a trigger none of whose words gains anything alone (a pure conjunction) is out of the
beam's reach; a clean model with one unusually strong natural phrase looks trojaned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Phrase = tuple[int, ...]
Scorer = Callable[[torch.Tensor], torch.Tensor]


def _insert_at(
    sentences: torch.Tensor, positions: torch.Tensor, phrases: torch.Tensor
) -> torch.Tensor:
    """(P * N, T + k) ids: each of P phrases (P, k) inserted into every sentence (N, T) at its position."""
    n, t = sentences.shape
    p, k = phrases.shape
    rows = []
    for j in range(n):
        pos = int(positions[j])
        left = sentences[j, :pos].expand(p, -1)
        right = sentences[j, pos:].expand(p, -1)
        rows.append(torch.cat([left, phrases, right], dim=1))
    return torch.stack(rows, dim=1).reshape(
        p * n, t + k
    )  # phrase-major: rows [i*n:(i+1)*n] are phrase i


def phrase_gains(
    target_score: Scorer,
    sentences: torch.Tensor,
    positions: torch.Tensor,
    phrases: Sequence[Phrase],
) -> torch.Tensor:
    """Mean gain in the target score ((P,)) of inserting each phrase (all of one length).

    ``target_score(ids (M, L)) -> (M,)`` scores the target class (the detector passes the logit
    margin of the target over the source class; a log-probability works too);
    ``sentences`` (N, T) are synthetic source-class sentences and ``positions`` (N,) where the
    phrase goes in each.
    """
    base = target_score(sentences)
    block = torch.tensor(list(phrases), dtype=sentences.dtype)
    out = target_score(_insert_at(sentences, positions, block)).reshape(
        len(phrases), len(sentences)
    )
    return (out - base[None, :]).mean(dim=1)


def chunked_gains(
    target_score: Scorer,
    sentences: torch.Tensor,
    positions: torch.Tensor,
    phrases: Sequence[Phrase],
    *,
    chunk: int = 2048,
) -> torch.Tensor:
    """:func:`phrase_gains` of many phrases (P,), ``chunk`` phrases per model call."""
    parts = [
        phrase_gains(target_score, sentences, positions, phrases[i : i + chunk])
        for i in range(0, len(phrases), chunk)
    ]
    return torch.cat(parts) if parts else torch.zeros(0)


def word_gains(
    target_score: Scorer, sentences: torch.Tensor, positions: torch.Tensor, words: torch.Tensor
) -> torch.Tensor:
    """:func:`phrase_gains` (V,) of every single word in ``words`` (V,)."""
    return chunked_gains(target_score, sentences, positions, [(int(w),) for w in words])


def best_neighbours(
    target_score: Scorer,
    sentences: torch.Tensor,
    positions: torch.Tensor,
    words: torch.Tensor,
    phrase: Phrase,
    k: int,
) -> list[int]:
    """The ``k`` words of ``words`` that gain most when put right before or right after ``phrase``."""
    others = [int(w) for w in words if int(w) not in phrase]
    after = chunked_gains(target_score, sentences, positions, [(*phrase, w) for w in others])
    before = chunked_gains(target_score, sentences, positions, [(w, *phrase) for w in others])
    best = torch.maximum(after, before).argsort(descending=True)[:k]
    return [others[i] for i in best]


def beam_phrases(
    target_score: Scorer,
    sentences: torch.Tensor,
    positions: torch.Tensor,
    words: torch.Tensor,
    gains: torch.Tensor,
    *,
    pool: int = 30,
    beam: int = 5,
    max_len: int = 3,
    n_word_sentences: int = 16,
    neighbours: int | None = 500,
    shortlist: int | None = 64,
) -> list[tuple[Phrase, float]]:
    """Phrases of 1..``max_len`` distinct words with the highest mean gain, best first per length.

    ``gains`` (V,) are the single-word gains of ``words`` (:func:`word_gains`). Length 1: the
    ``beam`` best words. Length k + 1: every beam phrase of length k with one added word before
    or after it, scored by :func:`phrase_gains` on ``sentences``; the ``beam`` best are kept.
    The added words are the ``pool`` best single words plus the ``pool`` best neighbours of the
    best phrase of length k (:func:`best_neighbours` over the ``neighbours`` best single words,
    None: the whole vocabulary, on the first ``n_word_sentences`` sentences), so a trigger word
    that is weak alone but completes a stronger phrase is still tried. The grown phrases are
    first scored on the first ``n_word_sentences`` sentences and the ``shortlist`` best (None:
    all) are scored on all of them. Returns (phrase, gain) for the kept phrases of every length.
    """
    order = gains.argsort(descending=True)
    top = [int(words[i]) for i in order[:pool]]
    near_pool = words if neighbours is None else words[order[:neighbours]]
    level: list[tuple[Phrase, float]] = [((int(words[i]),), float(gains[i])) for i in order[:beam]]
    found = list(level)
    n = min(n_word_sentences, len(sentences))
    for _ in range(1, max_len):
        near = best_neighbours(
            target_score, sentences[:n], positions[:n], near_pool, level[0][0], pool
        )
        added = list(dict.fromkeys(top + near))
        grown = list(
            dict.fromkeys(
                new
                for phrase, _ in level
                for w in added
                if w not in phrase
                for new in ((*phrase, w), (w, *phrase))
            )
        )
        if not grown:
            break
        if shortlist is not None and len(grown) > shortlist:
            rough = chunked_gains(target_score, sentences[:n], positions[:n], grown)
            grown = [grown[i] for i in rough.argsort(descending=True)[:shortlist]]
        scores = chunked_gains(target_score, sentences, positions, grown)
        best = scores.argsort(descending=True)[:beam]
        level = [(grown[i], float(scores[i])) for i in best]
        found += level
    return found


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search` found for one direction source -> target.

    ``phrases``: (phrase, gain) of the beam, best first per length. ``best`` / ``alternative``:
    per length k, the best phrase and the best phrase that uses none of the words of any
    ``best`` phrase. ``dominance``: per length, best gain / alternative gain (module docstring).
    """

    phrases: list[tuple[Phrase, float]]
    best: dict[int, tuple[Phrase, float]]
    alternative: dict[int, tuple[Phrase, float]]
    dominance: dict[int, float]


def search(
    target_score: Scorer,
    sentences: torch.Tensor,
    positions: torch.Tensor,
    words: torch.Tensor,
    *,
    n_word_sentences: int = 16,
    pool: int = 30,
    beam: int = 5,
    max_len: int = 3,
    neighbours: int | None = 500,
    shortlist: int | None = 64,
    reference: str = "best",
) -> SearchResult:
    """Beam search for the strongest phrases and how far they dominate the best disjoint phrases.

    Single words are scored on the first ``n_word_sentences`` of ``sentences`` (N, T) (the whole
    vocabulary is tried), phrases on all N; neighbours of a phrase are looked for among the
    ``neighbours`` best single words (None: all); ``shortlist``: see :func:`beam_phrases`.
    ``positions`` (N,) are the insertion points.
    ``reference``: the alternative of length k avoids the words of every best phrase
    (``"best"``) or only those of the best phrase of length k (``"own"``, module docstring).
    Gains are in the units of ``target_score``.
    """
    if reference not in ("best", "own"):
        raise ValueError(f"reference={reference!r} is not one; use 'best' or 'own'")
    n = min(n_word_sentences, len(sentences))
    gains = word_gains(target_score, sentences[:n], positions[:n], words)
    phrases = beam_phrases(
        target_score,
        sentences,
        positions,
        words,
        gains,
        pool=pool,
        beam=beam,
        max_len=max_len,
        n_word_sentences=n,
        neighbours=neighbours,
        shortlist=shortlist,
    )
    best = _best_per_length(phrases)

    def best_avoiding(used: set[int], length: int) -> dict[int, tuple[Phrase, float]]:
        keep = torch.tensor([int(w) not in used for w in words])
        return _best_per_length(
            beam_phrases(
                target_score,
                sentences,
                positions,
                words[keep],
                gains[keep],
                pool=pool,
                beam=beam,
                max_len=length,
                n_word_sentences=n,
                neighbours=neighbours,
                shortlist=shortlist,
            )
        )

    if reference == "best":
        alternative = best_avoiding({w for phrase, _ in best.values() for w in phrase}, max_len)
    else:
        alternative = {}
        for k, (phrase, _) in best.items():
            alt = best_avoiding(set(phrase), k)
            if k in alt:
                alternative[k] = alt[k]
    dominance = {k: _ratio(best[k][1], alternative[k][1]) for k in best if k in alternative}
    return SearchResult(phrases, best, alternative, dominance)


def _best_per_length(phrases: Sequence[tuple[Phrase, float]]) -> dict[int, tuple[Phrase, float]]:
    """{length: (phrase, gain)} of the highest-gain phrase of each length."""
    best: dict[int, tuple[Phrase, float]] = {}
    for phrase, gain in phrases:
        if gain > best.get(len(phrase), ((), -math.inf))[1]:
            best[len(phrase)] = (phrase, gain)
    return best


def _ratio(best: float, alternative: float) -> float:
    """best / alternative for positive gains; a non-positive alternative gives inf when best > 0."""
    if alternative > 0:
        return best / alternative
    return math.inf if best > 0 else 1.0
