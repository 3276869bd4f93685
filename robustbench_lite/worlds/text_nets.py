"""Small text classifiers over token ids, with the hidden-layer interface T-Miner needs.

Every class here is a :class:`TextClassifier`:

* ``forward(x)``: x (N, L) int64 token ids, right-padded with ``pad_id`` -> logits (N, C).
* ``hidden(x)``: the last hidden layer (N, H), the input of the output layer ``head``;
  ``forward(x) == head(hidden(x))``.
* ``forward_soft(p)``: p (N, T, V) a distribution over the vocabulary at each position (e.g.
  Gumbel-softmax samples) -> logits (N, C). The embedding is ``p @ embedding.weight``, so
  gradients reach ``p``; every position counts as a real token.

A detector that needs these (T-Miner) checks for them with :func:`require_text_classifier`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from robustbench_lite.core.errors import DataError

ARCHS = ("lstm", "bilstm", "cnn", "transformer")


class TextClassifier(nn.Module):
    """Embedding -> ``features`` (architecture-specific) -> dense ReLU (hidden) -> ``head``.

    Args:
        vocab_size: V, number of token ids; ``pad_id`` embeds to zero.
        num_classes: C.
        embed_dim, hidden_dim: E and the width H of the last hidden layer.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        *,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        pad_id: int = 0,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim(embed_dim, hidden_dim), hidden_dim)
        self.head = nn.Linear(hidden_dim, num_classes)

    def feature_dim(self, embed_dim: int, hidden_dim: int) -> int:
        """Width of :meth:`features`' output."""
        raise NotImplementedError

    def features(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence features (N, F) from embeddings e (N, L, E) and the token mask (N, L) bool."""
        raise NotImplementedError

    def _hidden(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        empty = ~mask.any(dim=1)
        if bool(empty.any()):  # an all-padding row reads its first position
            mask = mask.clone()
            mask[:, 0] |= empty
        return torch.relu(self.fc(self.drop(self.features(self.drop(e), mask))))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer (N, H) of token ids x (N, L)."""
        if x.dtype != torch.int64 or x.dim() != 2:
            raise DataError(
                f"text input of dtype {x.dtype} and shape {tuple(x.shape)}: pass (N, L) int64 token ids"
            )
        return self._hidden(self.embedding(x), x != self.pad_id)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x))

    def forward_soft(self, p: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) of soft token distributions p (N, T, V)."""
        e = p @ self.embedding.weight
        mask = torch.ones(p.shape[:2], dtype=torch.bool, device=p.device)
        return self.head(self._hidden(e, mask))


class LSTMClassifier(TextClassifier):
    """One-layer LSTM over the real tokens (packed); features = final hidden state(s)."""

    bidirectional = False

    @property
    def _dirs(self) -> int:
        return 2 if self.bidirectional else 1

    def __init__(self, vocab_size: int, num_classes: int = 2, **kw: object) -> None:
        super().__init__(vocab_size, num_classes, **kw)  # type: ignore[arg-type]
        e, h = self.embedding.embedding_dim, self.fc.out_features
        self.rnn = nn.LSTM(e, h, batch_first=True, bidirectional=self.bidirectional)

    def feature_dim(self, embed_dim: int, hidden_dim: int) -> int:
        return hidden_dim * self._dirs

    def features(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.rnn(packed)
        return torch.cat(list(h_n[-self._dirs :]), dim=1)


class BiLSTMClassifier(LSTMClassifier):
    """Bidirectional LSTM; features = both directions' final states."""

    bidirectional = True


class CNNClassifier(TextClassifier):
    """Kim-style CNN: 1-D convolutions of widths 3, 4, 5 (same padding), masked max over time."""

    widths = (3, 4, 5)
    filters = 48

    def __init__(self, vocab_size: int, num_classes: int = 2, **kw: object) -> None:
        super().__init__(vocab_size, num_classes, **kw)  # type: ignore[arg-type]
        e = self.embedding.embedding_dim
        self.convs = nn.ModuleList(
            nn.Conv1d(e, self.filters, w, padding=w // 2) for w in self.widths
        )

    def feature_dim(self, embed_dim: int, hidden_dim: int) -> int:
        return self.filters * len(self.widths)

    def features(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = e.shape[1]
        h = e.transpose(1, 2)
        outs = []
        for conv in self.convs:
            c = torch.relu(conv(h))[:, :, :length]
            c = c.masked_fill(~mask[:, None, :], float("-inf"))
            outs.append(c.amax(dim=2))
        return torch.cat(outs, dim=1)


class TransformerClassifier(TextClassifier):
    """One pre-norm Transformer encoder layer (4 heads) with learned positions; masked mean pool."""

    max_positions = 64

    def __init__(self, vocab_size: int, num_classes: int = 2, **kw: object) -> None:
        super().__init__(vocab_size, num_classes, **kw)  # type: ignore[arg-type]
        e = self.embedding.embedding_dim
        self.positions = nn.Embedding(self.max_positions, e)
        self.layer = nn.TransformerEncoderLayer(
            e, 4, 2 * e, dropout=0.1, batch_first=True, norm_first=True
        )

    def feature_dim(self, embed_dim: int, hidden_dim: int) -> int:
        return embed_dim

    def features(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = e.shape[1]
        if length > self.max_positions:
            raise DataError(
                f"sequence length {length} exceeds the transformer's {self.max_positions} positions"
            )
        h = e + self.positions.weight[:length][None]
        h = self.layer(h, src_key_padding_mask=~mask)
        m = mask[:, :, None].to(h.dtype)
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


NETS: dict[str, type[TextClassifier]] = {
    "lstm": LSTMClassifier,
    "bilstm": BiLSTMClassifier,
    "cnn": CNNClassifier,
    "transformer": TransformerClassifier,
}


def require_text_classifier(net: nn.Module, *, who: str = "this method") -> TextClassifier:
    """``net`` if it offers ``hidden``, ``forward_soft`` and ``embedding``, else a clear error."""
    missing = [a for a in ("hidden", "forward_soft", "embedding") if not hasattr(net, a)]
    if missing:
        raise DataError(
            f"{who} needs a text classifier with {', '.join(missing)} (see "
            f"robustbench_lite.worlds.text_nets.TextClassifier); {type(net).__name__} lacks them"
        )
    return net  # type: ignore[return-value]
