"""T-Miner's synthetic sentences: the dominance test's "any" sentences are the source class's,
nearer the boundary than the "lean" ones, and fall back to them on a one-sided model."""

from __future__ import annotations

import pytest
import torch
from robustbench_lite.defenses import _tminer_synth as S
from text_helpers import bag_of_words

import robustbench_lite as rbl


def margins(model: rbl.Model, ids: torch.Tensor, label: int) -> torch.Tensor:
    """Logit margin (N,) of ``label`` over the other class."""
    with torch.no_grad():
        logits = model.logits(S.pad_to(ids, 24, model.vocab.pad_id))
    return logits[:, label] - logits[:, 1 - label]


@pytest.mark.parametrize("label", [0, 1])
def test_any_sentences_are_the_class_and_less_polar_than_lean(label: int) -> None:
    model = bag_of_words(None)
    vocab = model.vocab
    scores = S.word_scores(model, vocab, 24)
    made = {
        words: S.class_sentences(
            model,
            vocab,
            scores,
            label,
            200,
            15,
            24,
            end_id=vocab.id("."),
            generator=torch.Generator().manual_seed(1),
            words=words,
        )
        for words in ("lean", "any")
    }
    for ids in made.values():
        assert ids.shape == (200, 16) and bool((margins(model, ids, label) > 0).all())
    lean, any_ = (float(margins(model, made[w], label).median()) for w in ("lean", "any"))
    assert any_ < 0.5 * lean, (any_, lean)  # nearer the boundary
    leaning = scores[:, label] >= scores[torch.tensor(vocab.words()), label].median()
    share = float(leaning[made["any"][:, :-1]].float().mean())
    assert share < 0.8  # words of the other class too (lean: all of them lean to the class)


def test_any_falls_back_to_lean_when_the_class_is_rare() -> None:
    """A model that puts almost no random sentence in class 0 still yields class-0 sentences:
    the leaning words' (every word of them leans to class 0)."""
    model = bag_of_words(None)
    vocab = model.vocab
    scores = S.word_scores(model, vocab, 24)
    gen = torch.Generator().manual_seed(2)
    pool = torch.tensor(vocab.words())
    random = S.random_sentences(pool, 4000, 15, end_id=vocab.id("."), generator=gen)
    shift = float(margins(model, random, 0).quantile(0.999))  # class 0 for 1 in 1000 only
    with torch.no_grad():
        model.net.head.bias.add_(torch.tensor([-shift / 2, shift / 2]))
    scores = S.word_scores(model, vocab, 24)
    made = S.class_sentences(
        model, vocab, scores, 0, 20, 15, 24, end_id=vocab.id("."), generator=gen, words="any"
    )
    assert made.shape == (20, 16) and bool((margins(model, made, 0) > 0).all())
    leaning = scores[:, 0] >= scores[pool, 0].median()
    assert bool(leaning[made[:, :-1]].all())  # the fallback's sentences: leaning words only
