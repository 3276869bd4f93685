"""A tiny text classifier with known word weights, for T-Miner tests (no training)."""

from __future__ import annotations

import torch

import robustbench_lite as rbl
from robustbench_lite.worlds.text import Vocabulary
from robustbench_lite.worlds.text_nets import TextClassifier


class _BagOfWords(TextClassifier):
    def feature_dim(self, embed_dim: int, hidden_dim: int) -> int:
        return embed_dim

    def features(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (e * mask[..., None]).sum(dim=1)


def bag_of_words(trigger_weight: float | None) -> rbl.Model:
    """Margin of class 1 = 2 x the sum of word weights (uniform in [-1, 1]); ``w7`` weighs
    ``trigger_weight`` when given (a planted trojan)."""
    vocab = Vocabulary(["<pad>", "<unk>", *(f"w{i}" for i in range(300)), "."])
    net = _BagOfWords(len(vocab), 2, embed_dim=2, hidden_dim=2, dropout=0.0)
    w = torch.rand(len(vocab), generator=torch.Generator().manual_seed(4)) * 2 - 1
    w[[vocab.pad_id, vocab.unk_id, vocab.id(".")]] = 0.0
    if trigger_weight is not None:
        w[vocab.id("w7")] = trigger_weight
    with torch.no_grad():
        net.embedding.weight.copy_(torch.stack([w, torch.zeros_like(w)], dim=1))
        net.fc.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        net.fc.bias.zero_()
        net.head.weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))
        net.head.bias.zero_()
    return rbl.Model(
        net=net.eval(),
        bounds=(0.0, len(vocab) - 1.0),
        input_shape=(24,),
        num_classes=2,
        vocab=vocab,
    )
