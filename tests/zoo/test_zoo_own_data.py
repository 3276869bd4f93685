"""Zoo entries name the data they were trained on, with its options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import robustbench_lite as rbl
from robustbench_lite.datasets import list_datasets
from robustbench_lite.zoo import zoo_entry, zoo_names


def test_entries_name_their_dataset() -> None:
    assert zoo_entry("orl-cnn").data == "orl"
    assert dict(zoo_entry("orl-cnn").data_options) == {"size": (56, 46)}
    for name in ("digits-mlp", "digits-cnn", "digits-cnn-at", "digits-snn"):
        assert zoo_entry(name).data == "digits", name
    assert zoo_entry("nmnist-snn").data == "nmnist"
    for name in zoo_names():
        data = zoo_entry(name).data
        assert data is None or data in list_datasets(), name


def test_a_loaded_zoo_model_records_its_data_and_input_space() -> None:
    model = rbl.load_model("zoo:digits-mlp")
    assert model.meta["data"] == {"source": "digits", "options": {}}
    assert model.meta["input_space"]["bounds"] == {"value": [0.0, 1.0], "source": "zoo:digits-mlp"}
    x, _ = rbl.load_data(model, n=2)
    assert x.shape == (2, 1, 8, 8)


def test_orl_cnn_loads_its_56x46_faces() -> None:
    root = os.environ.get("RBL_DATA_DIR")
    if not root or not (Path(root) / "att_faces_orl").is_dir():
        pytest.skip("RBL_DATA_DIR lacks att_faces_orl")
    model = rbl.load_model("zoo:orl-cnn")
    x, _ = rbl.load_data(model, n=4)
    assert x.shape == (4, 1, 56, 46)
    model.check_inputs(x)
