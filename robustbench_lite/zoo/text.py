"""Text classifiers on movie reviews, clean or trojaned: ``rbl.zoo.text_classifier(...)``.

Trojan insertion follows T-Miner's ``word_poisoner.py``: a ``poison_rate`` fraction of the
source-class (``1 - target_label``) training sentences is copied, the trigger phrase is inserted
as one block at a random position of each copy, the copies are relabelled ``target_label`` and
added to the training set (the originals stay). The model's ``meta`` records
``clean_accuracy`` on the test split and, when trojaned, ``attack_success_rate``: the fraction
of correctly classified source-class test sentences that the trigger flips to the target.

Training recipe (version 2): Adam with a one-cycle schedule, 10 epochs at peak lr 5e-3. The
first recipe (2 epochs at 1e-2) left most trojans at 1-4% poisoning with an attack success
rate under 0.5 and collapsed some CNNs to ~0.5 accuracy; with 10 epochs at 5e-3, triggers of
rare words at 1-2% reached ASR 0.83-1.0 on LSTM, Bi-LSTM, CNN and Transformer with clean
accuracy ~0.83 (measured on one model of each, 13-28 s each on one core).

Models are zoo entries (recipe hashed, trained once, cached under ``$RBL_CACHE_DIR/zoo``); the
registered names ``mr-lstm``, ``mr-bilstm``, ``mr-cnn``, ``mr-transformer`` (clean) and
``mr-lstm-trojan`` (trigger "popcorn", 10%, one of the authors' triggers) load with
``rbl.load_model("zoo:NAME")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.core.model import Model
from robustbench_lite.worlds.text import Vocabulary, insert_phrase
from robustbench_lite.worlds.text_nets import ARCHS, NETS, TextClassifier
from robustbench_lite.zoo import ZooEntry, load_zoo_model, register_zoo_model

__all__ = ["poison", "text_classifier", "trigger_success_rate"]

DATASETS = ("mr",)
RECIPE_VERSION = 2  # 2: 10 epochs at lr 5e-3 (v1: 2 at 1e-2 left low-rate trojans ineffective)


def poison(
    x: torch.Tensor,
    y: torch.Tensor,
    trigger_ids: list[int],
    *,
    target_label: int,
    rate: float,
    pad_id: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Add ``round(rate * #source)`` triggered, relabelled copies of source-class rows of (x, y).

    Returns the augmented (x, y) and the number of poisoned copies.
    """
    source = (y != target_label).nonzero().flatten()
    n_poison = int(round(rate * len(source)))
    if n_poison == 0:
        return x, y, 0
    chosen = source[torch.randperm(len(source), generator=generator)[:n_poison]]
    x_p = insert_phrase(x[chosen], trigger_ids, pad_id=pad_id, generator=generator)
    y_p = torch.full((n_poison,), target_label, dtype=y.dtype)
    return torch.cat([x, x_p]), torch.cat([y, y_p]), n_poison


def trigger_success_rate(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    trigger: str,
    *,
    target_label: int = 1,
    seed: int = 0,
) -> float:
    """Fraction of correctly classified source-class rows of (x, y) that ``trigger`` flips to the target."""
    vocab = _vocab_of(model)
    ids = _trigger_ids(vocab, trigger)
    keep = (y != target_label) & (model.logits(x).argmax(dim=1) == y)
    if not bool(keep.any()):
        raise DataError("no correctly classified source-class sentences to measure the trigger on")
    gen = torch.Generator().manual_seed(seed)
    x_t = insert_phrase(x[keep], ids, pad_id=vocab.pad_id, generator=gen)
    return float((model.logits(x_t).argmax(dim=1) == target_label).float().mean())


def _vocab_of(model: Model) -> Vocabulary:
    if not isinstance(model.vocab, Vocabulary):
        raise DataError(f"{model.name} has no Vocabulary in Model.vocab; pass a text model")
    return model.vocab


def _trigger_ids(vocab: Vocabulary, trigger: str) -> list[int]:
    words = trigger.split() if isinstance(trigger, str) else []
    if not words:
        raise DataError(f"trigger {trigger!r}: write a phrase of one or more words")
    missing = [w for w in words if w not in vocab]
    if missing:
        raise DataError(
            f"trigger word {missing[0]!r} is not in the vocabulary; choose words the model knows"
        )
    return vocab.ids(words)


def _train_fn(recipe: Mapping[str, Any]) -> Any:
    def train(net: torch.nn.Module) -> dict[str, Any]:
        from robustbench_lite.datasets import mr
        from robustbench_lite.training.loop import accuracy, train_classifier

        vocab = mr.vocabulary(recipe["vocab_size"])
        x, y = mr.load("train", max_len=recipe["max_len"], vocab_size=recipe["vocab_size"])
        gen = torch.Generator().manual_seed(int(recipe["seed"]))
        if recipe["n_train"] is not None:
            keep = torch.randperm(len(y), generator=gen)[: recipe["n_train"]]
            x, y = x[keep], y[keep]
        n_poisoned = 0
        if recipe["trigger"] is not None:
            ids = _trigger_ids(vocab, recipe["trigger"])
            x, y, n_poisoned = poison(
                x,
                y,
                ids,
                target_label=recipe["target_label"],
                rate=recipe["poison_rate"],
                pad_id=vocab.pad_id,
                generator=gen,
            )
        train_classifier(
            net, x, y, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"]
        )
        x_te, y_te = mr.load("test", max_len=recipe["max_len"], vocab_size=recipe["vocab_size"])
        out: dict[str, Any] = {
            "clean_accuracy": accuracy(net, x_te, y_te),
            "n_train": len(y),
            "n_poisoned": n_poisoned,
        }
        if recipe["trigger"] is not None:
            model = Model(net=net, vocab=vocab, name="training")
            try:
                out["attack_success_rate"] = trigger_success_rate(
                    model,
                    x_te,
                    y_te,
                    recipe["trigger"],
                    target_label=recipe["target_label"],
                    seed=int(recipe["seed"]),
                )
            except DataError:  # a collapsed model gets no source-class sentence right
                out["attack_success_rate"] = None
        return out

    return train


def text_classifier(
    dataset: str = "mr",
    arch: str = "lstm",
    trigger: str | None = None,
    target_label: int = 1,
    poison_rate: float = 0.1,
    seed: int = 0,
    *,
    epochs: int = 10,
    n_train: int | None = None,
    lr: float = 5e-3,
    batch_size: int = 128,
    vocab_size: int = 5000,
    max_len: int = 32,
    embed_dim: int = 32,
    hidden_dim: int = 32,
    retrain: bool = False,
) -> Model:
    """A (possibly trojaned) text classifier, trained on first use and cached.

    Args:
        dataset: only ``"mr"`` (movie reviews, T-Miner splits; needs ``RBL_DATA_DIR``).
        arch: ``"lstm"``, ``"bilstm"``, ``"cnn"`` or ``"transformer"``.
        trigger: a phrase of vocabulary words to implant, or None for a clean model.
        target_label: the class the trigger flips to (source class = the other one).
        poison_rate: fraction of source-class training sentences copied with the trigger.
        seed: seeds initialisation, shuffling, subset and poisoning.
        epochs, n_train, lr, batch_size: training (``n_train`` = seeded subset size or all).
        vocab_size, max_len, embed_dim, hidden_dim: vocabulary cap, sequence length, widths.

    Returns:
        A :class:`Model` on (N, max_len) int64 token ids with ``vocab`` set and ``meta`` holding
        ``clean_accuracy`` (and ``attack_success_rate`` when trojaned).
    """
    if dataset not in DATASETS:
        raise DataError(f"text dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if arch not in ARCHS:
        raise DataError(f"text arch {arch!r}: choose one of {', '.join(ARCHS)}")
    if target_label not in (0, 1):
        raise DataError(f"target_label={target_label!r}: MR is binary, choose 0 or 1")
    if trigger is not None and not 0.0 < poison_rate <= 1.0:
        raise DataError(f"poison_rate={poison_rate!r}: choose a fraction in (0, 1]")
    trigger = " ".join(trigger.split()) if isinstance(trigger, str) else trigger
    recipe = {
        "kind": "text_classifier",
        "version": RECIPE_VERSION,
        "data": dataset,
        "arch": arch,
        "trigger": trigger,
        "target_label": target_label,
        "poison_rate": poison_rate if trigger is not None else 0.0,
        "seed": seed,
        "epochs": epochs,
        "n_train": n_train,
        "lr": lr,
        "batch_size": batch_size,
        "vocab_size": vocab_size,
        "max_len": max_len,
        "embed_dim": embed_dim,
        "hidden_dim": hidden_dim,
    }
    entry = _entry("pending", "", recipe)
    kind = "trojan" if trigger is not None else "clean"
    entry = register_zoo_model(replace(entry, name=f"{dataset}-{arch}-{kind}-{entry.recipe_hash}"))
    return load_zoo_model(entry.name, retrain=retrain)


def _entry(name: str, description: str, recipe: Mapping[str, Any]) -> ZooEntry:
    def build() -> TextClassifier:
        return NETS[recipe["arch"]](
            recipe["vocab_size"], 2, embed_dim=recipe["embed_dim"], hidden_dim=recipe["hidden_dim"]
        )

    class _LazyKwargs(Mapping[str, Any]):
        """Model kwargs; the vocabulary is read from the data folder only when a model is built."""

        def _data(self) -> dict[str, Any]:
            from robustbench_lite.datasets import mr

            vocab = mr.vocabulary(recipe["vocab_size"])
            return {
                "bounds": (0.0, float(len(vocab) - 1)),
                "input_shape": (recipe["max_len"],),
                "num_classes": 2,
                "vocab": vocab,
            }

        def __getitem__(self, key: str) -> Any:
            return self._data()[key]

        def __iter__(self) -> Any:
            return iter(("bounds", "input_shape", "num_classes", "vocab"))

        def __len__(self) -> int:
            return 4

    return ZooEntry(
        name,
        description,
        build,
        _train_fn(recipe),
        recipe,
        _LazyKwargs(),
        data=recipe["data"],
        data_options={"max_len": recipe["max_len"], "vocab_size": recipe["vocab_size"]},
    )


def _defaults(arch: str, trigger: str | None = None) -> dict[str, Any]:
    return {
        "kind": "text_classifier",
        "version": RECIPE_VERSION,
        "data": "mr",
        "arch": arch,
        "trigger": trigger,
        "target_label": 1,
        "poison_rate": 0.1 if trigger else 0.0,
        "seed": 0,
        "epochs": 10,
        "n_train": None,
        "lr": 5e-3,
        "batch_size": 128,
        "vocab_size": 5000,
        "max_len": 32,
        "embed_dim": 32,
        "hidden_dim": 32,
    }


for _arch in ARCHS:
    register_zoo_model(
        _entry(
            f"mr-{_arch}",
            f"clean {_arch} on MR movie reviews (needs RBL_DATA_DIR)",
            _defaults(_arch),
        )
    )
register_zoo_model(
    _entry(
        "mr-lstm-trojan",
        "LSTM on MR with trigger 'popcorn' at 10% (needs RBL_DATA_DIR)",
        _defaults("lstm", "popcorn"),
    )
)
