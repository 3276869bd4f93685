"""T-Miner's synthetic inputs: nonsensical sentences made of vocabulary words, labelled by querying.

T-Miner has no training data and no clean inputs (threat model of Azizi et al. 2021). Everything
the detector feeds the suspicious classifier is built here from ``Model.vocab`` alone:

* :func:`word_scores`: the classifier's class probabilities for every word fed alone
  (``prob_vocab.txt`` of the released code).
* :func:`random_sentences`: sentences of ``n_words`` distinct random words (drawn without
  replacement from a word pool), ending with "." when the vocabulary has it
  (``helper_sentence_random.py``).
* :func:`class_sentences`: random sentences from the words that lean to one class, kept only if
  the classifier puts them in that class ("source-class synthetic inputs").
  ``words="any"`` (a deviation, issue 19; an option of the dominance test, off by default,
  see ``tminer.py``) draws the words from the whole vocabulary instead and keeps the sentences
  the classifier puts in the class: they are as much the class's as the model says, but far
  less polar (median source margin about 2 logits instead of 5-10 on development models),
  nearer the boundary where a trigger learnt from 1-2% poisoned data flips them. When the
  classifier puts too few of them in the class (a model leaning to the other class), the
  class's leaning words are used, as for ``"lean"``.
"""

from __future__ import annotations

import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.core.model import Model
from robustbench_lite.worlds.text import Vocabulary


def pad_to(ids: torch.Tensor, length: int, pad_id: int) -> torch.Tensor:
    """Right-pad (or truncate) token ids (N, T) to (N, length)."""
    n, t = ids.shape
    if t >= length:
        return ids[:, :length]
    return torch.cat([ids, torch.full((n, length - t), pad_id, dtype=ids.dtype)], dim=1)


def predict(model: Model, ids: torch.Tensor, length: int, pad_id: int) -> torch.Tensor:
    """Class probabilities (N, C) of token ids (N, T), padded to the model's length."""
    with torch.no_grad():
        return torch.softmax(model.logits(pad_to(ids, length, pad_id), batch_size=512), dim=1)


def word_scores(model: Model, vocab: Vocabulary, length: int) -> torch.Tensor:
    """(V, C) class probabilities of each word fed alone (rows of pad/unk are NaN)."""
    words = torch.tensor(vocab.words(), dtype=torch.int64)
    probs = predict(model, words[:, None], length, vocab.pad_id)
    out = torch.full((len(vocab), probs.shape[1]), float("nan"))
    out[words] = probs
    return out


def random_sentences(
    pool: torch.Tensor, n: int, n_words: int, *, end_id: int | None, generator: torch.Generator
) -> torch.Tensor:
    """(n, n_words [+1]) ids: ``n_words`` distinct words of ``pool`` each, then ``end_id`` if given."""
    if len(pool) < n_words:
        raise DataError(
            f"only {len(pool)} words to build {n_words}-word synthetic sentences; use a larger vocabulary"
        )
    keys = torch.rand(n, len(pool), generator=generator)
    picks = pool[keys.topk(n_words, dim=1).indices]
    if end_id is not None:
        picks = torch.cat([picks, torch.full((n, 1), end_id, dtype=picks.dtype)], dim=1)
    return picks


def class_sentences(
    model: Model,
    vocab: Vocabulary,
    scores: torch.Tensor,
    label: int,
    n: int,
    n_words: int,
    length: int,
    *,
    end_id: int | None,
    generator: torch.Generator,
    max_rounds: int = 20,
    words: str = "lean",
) -> torch.Tensor:
    """``n`` synthetic sentences of words leaning to ``label``, each classified as ``label``.

    Words "lean" to ``label`` when their single-word probability of ``label`` is at least the
    median over the vocabulary; ``words="any"`` draws from the whole vocabulary (module
    docstring) and falls back to the leaning words when fewer than ``n`` of
    ``2 * n * max(2, max_rounds // 4)`` sentences land in ``label``. Raises :class:`DataError` if the
    classifier never agrees.
    """
    if words not in ("lean", "any"):
        raise ValueError(f"words={words!r} is not a word pool; use 'lean' or 'any'")
    vocab_words = torch.tensor(vocab.words(), dtype=torch.int64)
    if words == "any":
        try:
            rounds = max(2, max_rounds // 4)  # a model leaning to the other class: fall back soon
            return _sentences_from(
                model, vocab, vocab_words, label, n, n_words, length, end_id, generator, rounds
            )
        except DataError:
            pass
    p = scores[vocab_words, label]
    pool = vocab_words[p >= p.median()]
    return _sentences_from(
        model, vocab, pool, label, n, n_words, length, end_id, generator, max_rounds
    )


def _sentences_from(
    model: Model,
    vocab: Vocabulary,
    pool: torch.Tensor,
    label: int,
    n: int,
    n_words: int,
    length: int,
    end_id: int | None,
    generator: torch.Generator,
    max_rounds: int,
) -> torch.Tensor:
    """``n`` random sentences of ``pool`` words that the classifier puts in ``label``."""
    kept: list[torch.Tensor] = []
    total = 0
    for _ in range(max_rounds):
        cand = random_sentences(pool, 2 * n, n_words, end_id=end_id, generator=generator)
        ok = predict(model, cand, length, vocab.pad_id).argmax(dim=1) == label
        kept.append(cand[ok])
        total += int(ok.sum())
        if total >= n:
            return torch.cat(kept)[:n]
    raise DataError(
        f"the model classified only {total} of {2 * n * max_rounds} synthetic class-{label} sentences "
        f"as class {label}; T-Miner needs at least {n}"
    )
