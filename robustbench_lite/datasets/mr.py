"""Movie reviews (MR / Rotten Tomatoes) in the T-Miner authors' splits: ``$RBL_DATA_DIR/tminer_rotten_tomato``.

Files: ``{train,dev,test}_x.txt`` (one lowercased, whitespace-tokenised sentence per line) and
``{train,dev,test}_y.txt`` (labels, 1 = positive, 0 = negative). See that folder's README.md.

``rbl.load_data("mr", split="train" | "test")`` returns x (N, max_len) int64 token ids, right-
padded with the pad id 0, and y (N,) int64. Splits: "train" is their train split (11,775) and
"test" their test split (2,524). Their dev split (2,524) is not reachable through
``load_data`` (whose splits are train/test); it is used by nothing in the package and can be
read with ``robustbench_lite.datasets.mr.load("dev")`` or :func:`sentences`.

The vocabulary (:func:`vocabulary`) is built from the train split only, capped at
``vocab_size`` tokens (most frequent first, ties alphabetical); other tokens map to unk.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.datasets import Domain, data_folder
from robustbench_lite.worlds.text import Vocabulary

FOLDER = "tminer_rotten_tomato"
ALL_SPLITS = ("train", "dev", "test")
MAX_LEN = 32  # whole for ~92% of sentences (median 21, 95th percentile 35 tokens); longer ones are truncated
VOCAB_SIZE = 5000
#: Token ids: their range depends on the vocabulary (a model of them declares its own bounds).
DOMAIN = Domain(bounds=None)


@lru_cache(maxsize=8)
def sentences(split: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The raw sentences and labels of ``split`` ("train", "dev" or "test")."""
    if split not in ALL_SPLITS:
        raise DataError(f"MR split {split!r}: choose one of {', '.join(ALL_SPLITS)}")
    root = data_folder(FOLDER)
    x_path, y_path = root / f"{split}_x.txt", root / f"{split}_y.txt"
    try:
        text = x_path.read_text(encoding="utf-8").splitlines()
        raw_labels = y_path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read MR split {split!r} ({exc}); see {FOLDER}/README.md") from None
    if not text:
        raise DataError(f"{x_path} is empty; the MR {split} split needs one sentence per line")
    if len(text) != len(raw_labels):
        raise DataError(
            f"{x_path} has {len(text)} sentences but {y_path} has {len(raw_labels)} labels; "
            "the files must be aligned line by line"
        )
    bad = [v for v in raw_labels if v not in ("0", "1")]
    if bad:
        raise DataError(f"{y_path}: label {bad[0]!r} is not 0 or 1; MR labels are binary")
    empty = [i for i, s in enumerate(text) if not s.split()]
    if empty:
        raise DataError(f"{x_path}: line {empty[0] + 1} is empty; every line must hold a sentence")
    return tuple(text), tuple(int(v) for v in raw_labels)


@lru_cache(maxsize=4)
def vocabulary(vocab_size: int = VOCAB_SIZE) -> Vocabulary:
    """The vocabulary of the train split, capped at ``vocab_size`` tokens (pad and unk included)."""
    text, _ = sentences("train")
    return Vocabulary.build(text, max_size=vocab_size)


def load(
    split: str = "test", max_len: int = MAX_LEN, vocab_size: int = VOCAB_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, max_len) int64 token ids and y (N,) int64 labels of the MR ``split``."""
    text, labels = sentences(split)
    x = vocabulary(vocab_size).encode(text, max_len)
    return x, torch.tensor(labels, dtype=torch.int64)
