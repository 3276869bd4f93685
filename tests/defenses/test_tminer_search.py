"""The query search behind T-Miner's extra candidates and its dominance test, on scorers with known answers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from robustbench_lite.defenses import _tminer_search as search

VOCAB = 400  # word ids 1..399; 0 is padding


def additive_scorer(
    seed: int, trigger: tuple[int, ...] = (), bonus: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Margin = sum of per-word weights (a clean bag-of-words model), plus ``bonus`` when the
    contiguous ``trigger`` occurs (a trojan that fires on the phrase).

    Each trigger word alone weighs as much as the strongest clean words (poisoning teaches the
    words too; on the benchmark zoo they rank at the top of the single-word gains), so the beam
    search can start from them; a trigger whose words gain nothing alone is out of its reach.
    """
    weights = (
        torch.rand(VOCAB, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    )  # many about equally strong words
    weights[0] = 0.0
    for w in trigger:
        weights[w] = float(weights.max())

    def margin(ids: torch.Tensor) -> torch.Tensor:
        score = weights[ids].sum(dim=1)
        if trigger:
            k = len(trigger)
            windows = ids.unfold(1, k, 1)  # (M, L - k + 1, k)
            score = score + bonus * (windows == torch.tensor(trigger)).all(dim=2).any(dim=1).float()
        return score

    return margin


def sentences(n: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    words = torch.arange(1, VOCAB)
    rows = words[torch.rand(n, len(words), generator=gen).topk(15, dim=1).indices]
    positions = (torch.rand(n, generator=gen) * 16).long()
    return rows, positions, words


@pytest.mark.parametrize("reference", ["own", "best"])
@pytest.mark.parametrize("trigger", [(37,), (37, 101), (37, 101, 250)])
def test_search_assembles_the_trigger_and_finds_it_dominant(
    trigger: tuple[int, ...], reference: str
) -> None:
    rows, positions, words = sentences()
    found = search.search(
        additive_scorer(0, trigger, bonus=8.0),
        rows,
        positions,
        words,
        pool=20,
        beam=5,
        reference=reference,
    )
    k = len(trigger)
    best_k, gain = found.best[k]
    assert best_k == trigger and gain > 8.0
    assert found.dominance[max(k, 2)] > 1.5  # far above the 1.27 that clean models stay under
    assert not set(trigger) & set(
        found.alternative[k][0]
    )  # the alternative avoids the best phrases' words


def test_a_clean_additive_model_has_no_dominant_phrase() -> None:
    rows, positions, words = sentences()
    found = search.search(additive_scorer(0), rows, positions, words, pool=20, beam=5)
    weights = additive_scorer(0)(torch.arange(VOCAB)[:, None])
    top3 = tuple(int(w) for w in weights.argsort(descending=True)[:3])
    assert set(found.best[3][0]) == set(top3)  # additive: the best phrase is the three best words
    assert all(d < 1.27 for k, d in found.dominance.items() if k >= 2), found.dominance


def test_phrase_gains_are_mean_margin_increases() -> None:
    rows, positions, words = sentences(n=4)
    scorer = additive_scorer(3)
    gains = search.phrase_gains(scorer, rows, positions, [(5, 9), (11, 12)])
    weights = scorer(torch.arange(VOCAB)[:, None])
    expected = torch.stack([weights[5] + weights[9], weights[11] + weights[12]])
    assert torch.allclose(gains, expected, atol=1e-5)


def test_the_own_reference_avoids_only_the_phrase_s_words() -> None:
    """Additive clean model: the best pair is the two best words; its "own" alternative is the
    3rd and 4th, while "best" also avoids the best triple's third word (4th and 5th)."""
    rows, positions, words = sentences()
    scorer = additive_scorer(0)
    weights = scorer(torch.arange(VOCAB)[:, None])
    ranked = [int(w) for w in weights.argsort(descending=True)[:5]]
    found = {
        ref: search.search(scorer, rows, positions, words, pool=20, beam=5, reference=ref)
        for ref in ("own", "best")
    }
    assert set(found["own"].best[2][0]) == set(ranked[:2])
    assert set(found["own"].alternative[2][0]) == set(ranked[2:4])
    assert set(found["best"].alternative[2][0]) == set(ranked[3:5])
    assert found["own"].dominance[2] < found["best"].dominance[2]
    with pytest.raises(ValueError, match="reference='all' is not one"):
        search.search(scorer, rows, positions, words, reference="all")
