"""Text inputs: a :class:`Vocabulary` (token <-> id) and phrase insertion on token-id tensors.

Text models take token ids ``x`` of shape (N, L), int64, right-padded with ``vocab.pad_id``.
The vocabulary travels with the model as ``Model.vocab``; it is built deterministically from a
corpus (most frequent tokens first, ties broken alphabetically) with a size cap, and is saved
as JSON::

    {"format": "robustbench_lite.vocabulary", "version": 1,
     "pad": "<pad>", "unk": "<unk>", "tokens": ["<pad>", "<unk>", "the", ...]}

``tokens[i]`` is the token of id ``i``; the pad and unk tokens must be present and distinct.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from robustbench_lite.core.errors import DataError, VocabularyError

__all__ = ["PAD", "UNK", "Vocabulary", "insert_phrase"]

PAD = "<pad>"
UNK = "<unk>"
FORMAT = "robustbench_lite.vocabulary"
VERSION = 1


class Vocabulary:
    """A fixed token <-> id mapping with a padding and an unknown-token id.

    Args:
        tokens: the token of each id, in id order; must contain ``pad`` and ``unk`` once each.
        pad, unk: the padding and unknown tokens.
    """

    def __init__(self, tokens: Sequence[str], *, pad: str = PAD, unk: str = UNK) -> None:
        tokens = list(tokens)
        bad = [t for t in tokens if not isinstance(t, str) or not t or any(c.isspace() for c in t)]
        if bad:
            raise VocabularyError(
                f"vocabulary token {bad[0]!r} is not a non-empty string without whitespace; "
                "rebuild the vocabulary from whitespace-tokenised text"
            )
        seen: set[str] = set()
        for t in tokens:
            if t in seen:
                raise VocabularyError(
                    f"vocabulary token {t!r} appears twice; each token needs one id"
                )
            seen.add(t)
        for role, t in (("pad", pad), ("unk", unk)):
            if t not in seen:
                raise VocabularyError(
                    f"vocabulary lacks its {role} token {t!r}; add it to the token list"
                )
        if pad == unk:
            raise VocabularyError(f"pad and unk are both {pad!r}; they need distinct tokens")
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.pad, self.unk = pad, unk
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.unk_id = self._ids[pad], self._ids[unk]

    # ---------------------------------------------------------------- building
    @classmethod
    def build(
        cls, sentences: Iterable[str], *, max_size: int = 5000, min_count: int = 1
    ) -> Vocabulary:
        """The ``max_size`` most frequent whitespace tokens of ``sentences`` (pad, unk included).

        Order: pad (id 0), unk (id 1), then tokens by decreasing count, ties alphabetical, so
        the same corpus always gives the same ids.
        """
        if max_size < 3:
            raise VocabularyError(
                f"max_size={max_size}: a vocabulary needs room for pad, unk and a word"
            )
        counts = Counter(tok for s in sentences for tok in s.split())
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        if not counts:
            raise VocabularyError(
                "cannot build a vocabulary from no tokens; pass non-empty sentences"
            )
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        return cls([PAD, UNK, *ranked[: max_size - 2]])

    # ---------------------------------------------------------------- mapping
    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self.tokens, self.pad, self.unk) == (other.tokens, other.pad, other.unk)

    def __hash__(self) -> int:
        return hash((self.tokens, self.pad, self.unk))

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def id(self, token: str) -> int:
        """The id of ``token`` (``unk_id`` if unknown)."""
        return self._ids.get(token, self.unk_id)

    def ids(self, text: str | Sequence[str]) -> list[int]:
        """Ids of a sentence (split on whitespace) or of a token list, unpadded."""
        toks = text.split() if isinstance(text, str) else list(text)
        return [self.id(t) for t in toks]

    def encode(self, sentences: Sequence[str], length: int) -> torch.Tensor:
        """Token ids (N, length) int64: truncated to ``length``, right-padded with ``pad_id``."""
        if length < 1:
            raise DataError(f"length={length}: sequences need at least one position")
        out = torch.full((len(sentences), length), self.pad_id, dtype=torch.int64)
        for i, s in enumerate(sentences):
            ids = self.ids(s)[:length]
            if ids:
                out[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The sentence of one id sequence, pad ids dropped."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        for v in values:
            if not 0 <= int(v) < len(self):
                raise DataError(f"token id {v} is outside this vocabulary of {len(self)} tokens")
        return " ".join(self.tokens[int(v)] for v in values if int(v) != self.pad_id)

    def words(self) -> list[int]:
        """Ids of every real token (all ids except pad and unk)."""
        return [i for i in range(len(self)) if i not in (self.pad_id, self.unk_id)]

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (see the module docstring)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "pad": self.pad,
            "unk": self.unk,
            "tokens": list(self.tokens),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "vocabulary") -> Vocabulary:
        """Inverse of :meth:`to_dict`; malformed input raises :class:`VocabularyError`."""
        if not isinstance(data, Mapping):
            raise VocabularyError(
                f"{source}: expected a JSON object with 'tokens', got {type(data).__name__}"
            )
        if data.get("format", FORMAT) != FORMAT or data.get("version", VERSION) != VERSION:
            raise VocabularyError(
                f"{source}: format {data.get('format')!r} version {data.get('version')!r} is not "
                f"{FORMAT!r} version {VERSION}; re-save it with Vocabulary.save"
            )
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise VocabularyError(
                f"{source}: 'tokens' must be a list of strings, got {type(tokens).__name__}"
            )
        pad, unk = data.get("pad", PAD), data.get("unk", UNK)
        if not isinstance(pad, str) or not isinstance(unk, str):
            raise VocabularyError(
                f"{source}: 'pad' and 'unk' must be strings, got {pad!r} and {unk!r}"
            )
        return cls(tokens, pad=pad, unk=unk)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (atomically)."""
        from robustbench_lite.core.io import atomic_write_bytes

        atomic_write_bytes(
            Path(path), json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8")
        )

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary saved by :meth:`save`; clear errors for missing or malformed files."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VocabularyError(
                f"{path}: cannot read vocabulary ({exc}); check the path"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VocabularyError(
                f"{path}: not valid JSON ({exc}); re-save it with Vocabulary.save"
            ) from None
        return cls.from_dict(data, source=str(path))


def insert_phrase(
    x: torch.Tensor, phrase: Sequence[int], *, pad_id: int, generator: torch.Generator
) -> torch.Tensor:
    """Insert ``phrase`` (token ids) as one block at a random position of each row of ``x``.

    ``x`` is (N, L) right-padded token ids. The position is uniform over the slots that keep the
    whole phrase inside the L columns (at most the sentence length); tokens pushed past L are
    dropped. Returns a new (N, L) tensor.
    """
    n, length = x.shape
    k = len(phrase)
    if not 1 <= k <= length:
        raise DataError(
            f"phrase of {k} tokens cannot be inserted into sequences of length {length}"
        )
    lengths = (x != pad_id).sum(dim=1)
    limit = torch.clamp(torch.minimum(lengths, torch.full_like(lengths, length - k)), min=0)
    pos = (torch.rand(n, generator=generator) * (limit + 1).float()).long().clamp(max=length - k)
    out = torch.full_like(x, pad_id)
    block = torch.tensor(list(phrase), dtype=x.dtype)
    for i in range(n):
        p = int(pos[i])
        row = torch.cat([x[i, :p], block, x[i, p:]])[:length]
        out[i] = row
    return out
