"""Each dataset declares its domain; a model's own data is what ``rbl.load_data(model)`` loads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.datasets import Domain, dataset_domain, list_datasets
from robustbench_lite.models.domain import choose_data


def test_every_dataset_module_declares_a_domain() -> None:
    for name in list_datasets():
        if name == "npz":  # npz:PATH arrays say nothing about their range
            assert dataset_domain(name) is None and dataset_domain("npz:x.npz") is None
            continue
        assert isinstance(dataset_domain(name), Domain), name
    digits = dataset_domain("digits")
    assert digits is not None and digits.bounds == (0.0, 1.0) and digits.mean is None
    assert digits.default_threats == ("linf:0.1", "l2:1")  # what the digits zoo models use
    mr = dataset_domain("mr")
    assert mr is not None and mr.bounds is None  # token ids: the model declares its bounds


def test_declared_bounds_hold_for_digits() -> None:
    x, _ = rbl.load_data("digits")
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_load_data_of_a_model_uses_its_own_data_and_options() -> None:
    model = rbl.Model(net=nn.Flatten(), meta={"data": {"source": "digits", "options": {}}})
    x, y = rbl.load_data(model, n=3)
    assert x.shape == (3, 1, 8, 8) and torch.equal(y, rbl.load_data("digits", n=3)[1])
    with pytest.raises(rbl.DataError, match="names no data of its own"):
        rbl.load_data(rbl.Model(net=nn.Flatten()))


def test_choose_data_order() -> None:
    own = rbl.Model(
        net=nn.Flatten(),
        name="m",
        meta={"data": {"source": "orl", "options": {"size": (56, 46)}, "declared_by": "zoo:x"}},
    )
    assert choose_data(own).source == "orl" and choose_data(own).chosen_by == "zoo:x"
    same = choose_data(own, "orl")  # the model's own dataset named without options: its options
    assert same.options == {"size": (56, 46)} and same.chosen_by == "--data"
    other = choose_data(own, "digits")
    assert other.source == "digits" and other.options == {}
    plain = choose_data(rbl.Model(net=nn.Flatten()))
    assert plain.source == "digits" and plain.chosen_by.startswith("default")
