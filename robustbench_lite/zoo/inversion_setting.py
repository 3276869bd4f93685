"""The two model-inversion settings and their index-level split bookkeeping.

A *setting* fixes which classes are private (the target classifier is trained on them and the
attacker wants to reconstruct them) and which are public (the attacker may use their images to
train a GAN prior or to distil surrogate students). The two class sets are disjoint, as in GMI's
MNIST setting (Zhang et al., CVPR 2020, arXiv 1911.07135) and the face settings of the papers.

- ``digits``: scikit-learn's 8x8 digits; private classes 0-4, public classes 5-9.
- ``orl``: AT&T/ORL faces from the data folder, resized to 48x40; private identities 0-19,
  public identities 20-39.

Every image of a setting has a *pool index*: its position in the concatenation of the
dataset's ``train`` split followed by its ``test`` split. Private training data are the train
part of the private classes, private test data their test part; the public set is every pool
image of a public class (both parts). Anything trained on public data takes its indices from
:meth:`InversionSetting.public_data` and must pass :meth:`InversionSetting.check_public_only`,
which raises :class:`PrivateDataLeak` if one index belongs to a private image; the indices are
recorded in the cached metadata so tests can re-check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from robustbench_lite.core.errors import (
    DataError,
    PrivateDataLeak,
    UnsupportedThreatError,
    did_you_mean,
)
from robustbench_lite.core.model import Model

__all__ = ["SETTINGS", "InversionSetting", "get_setting", "setting_for_model"]


@dataclass(frozen=True)
class InversionSetting:
    """One private/public split of a dataset for model inversion.

    Args:
        name: ``digits`` or ``orl``; also the prefix of the zoo entries of the setting.
        dataset: the :func:`robustbench_lite.load_data` spec.
        private_classes: original labels of the private classes, relabelled 0..P-1 in order.
        public_classes: original labels of the public classes (disjoint from the private ones).
        size: (height, width) passed to the loader, or None for the native size.
        input_shape: (C, H, W) of one image in [0, 1].
        z_dim: latent size of the setting's GAN prior.
    """

    name: str
    dataset: str
    private_classes: tuple[int, ...]
    public_classes: tuple[int, ...]
    size: tuple[int, int] | None
    input_shape: tuple[int, int, int]
    z_dim: int

    def __post_init__(self) -> None:
        if set(self.private_classes) & set(self.public_classes):
            raise DataError(f"setting {self.name}: private and public classes overlap")

    @property
    def num_private(self) -> int:
        """Number of private classes (the target classifier's output size)."""
        return len(self.private_classes)

    def pool(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, is_train): every image of the dataset, train split first; y original labels."""
        return _pool(self.dataset, self.size)

    def private_indices(self, split: str = "train") -> torch.Tensor:
        """Sorted pool indices (int64) of the private images of ``split`` (train or test)."""
        _, y, is_train = self.pool()
        part = is_train if split == "train" else ~is_train
        return (part & _isin(y, self.private_classes)).nonzero()[:, 0]

    def public_indices(self) -> torch.Tensor:
        """Sorted pool indices (int64) of every public image (both splits)."""
        _, y, _ = self.pool()
        return _isin(y, self.public_classes).nonzero()[:, 0]

    def private_data(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x (N, C, H, W), y (N,) relabelled 0..P-1, pool indices (N,)) of the private ``split``."""
        x, y, _ = self.pool()
        idx = self.private_indices(split)
        lookup = {c: i for i, c in enumerate(self.private_classes)}
        labels = torch.tensor([lookup[int(c)] for c in y[idx]], dtype=torch.int64)
        return x[idx].clone(), labels, idx

    def public_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (M, C, H, W), pool indices (M,)) of the public images, checked to be public only."""
        x, _, _ = self.pool()
        idx = self.public_indices()
        self.check_public_only(idx)
        return x[idx].clone(), idx

    def check_public_only(self, indices: torch.Tensor) -> None:
        """Raise :class:`PrivateDataLeak` unless every pool index in ``indices`` is public."""
        _, y, _ = self.pool()
        indices = torch.as_tensor(indices, dtype=torch.int64)
        if indices.numel() and (indices.min() < 0 or indices.max() >= len(y)):
            raise DataError(f"setting {self.name}: pool indices must lie in 0..{len(y) - 1}")
        private = torch.cat([self.private_indices("train"), self.private_indices("test")])
        leaked = indices[torch.isin(indices, private) | _isin(y[indices], self.private_classes)]
        if leaked.numel():
            raise PrivateDataLeak(
                f"setting {self.name}: {leaked.numel()} private image(s) (pool indices "
                f"{leaked[:5].tolist()}...) in a public-only training set; use public_data()"
            )


def _isin(y: torch.Tensor, classes: tuple[int, ...]) -> torch.Tensor:
    return torch.isin(y, torch.tensor(classes, dtype=y.dtype))


@lru_cache(maxsize=4)
def _pool(
    dataset: str, size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from robustbench_lite.datasets import load_data

    kw: dict[str, Any] = {} if size is None else {"size": size}
    x_tr, y_tr = load_data(dataset, split="train", **kw)
    x_te, y_te = load_data(dataset, split="test", **kw)
    is_train = torch.cat(
        [torch.ones(len(y_tr), dtype=torch.bool), torch.zeros(len(y_te), dtype=torch.bool)]
    )
    return torch.cat([x_tr, x_te]), torch.cat([y_tr, y_te]), is_train


SETTINGS: dict[str, InversionSetting] = {
    "digits": InversionSetting(
        name="digits",
        dataset="digits",
        private_classes=(0, 1, 2, 3, 4),
        public_classes=(5, 6, 7, 8, 9),
        size=None,
        input_shape=(1, 8, 8),
        z_dim=32,
    ),
    "orl": InversionSetting(
        name="orl",
        dataset="orl",
        private_classes=tuple(range(20)),
        public_classes=tuple(range(20, 40)),
        size=(48, 40),
        input_shape=(1, 48, 40),
        z_dim=64,
    ),
}


def get_setting(name: str) -> InversionSetting:
    """The setting called ``name`` (``digits`` or ``orl``)."""
    if name not in SETTINGS:
        raise UnsupportedThreatError(
            f"unknown inversion setting {name!r}{did_you_mean(name, SETTINGS)}; "
            f"choose one of {', '.join(SETTINGS)}"
        )
    return SETTINGS[name]


def setting_for_model(model: Model, name: str | None = None) -> InversionSetting:
    """The setting ``name``, or the one whose input shape and class count match ``model``."""
    if name is not None:
        setting = get_setting(name)
        candidates = [setting]
    else:
        candidates = list(SETTINGS.values())
    for setting in candidates:
        shape_ok = model.input_shape is None or tuple(model.input_shape) == setting.input_shape
        classes_ok = model.num_classes is None or model.num_classes == setting.num_private
        if shape_ok and classes_ok:
            return setting
    raise UnsupportedThreatError(
        f"model {model.name} (input {model.input_shape}, {model.num_classes} classes) fits no "
        f"inversion setting{' ' + repr(name) if name else ''}; train a target on a setting's private "
        "classes, e.g. zoo:digits-private-target (1x8x8, 5 classes) or zoo:orl-private-target"
    )
