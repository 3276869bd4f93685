"""Where a model's bounds, normalization and input shape come from, and the record of it."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
import torch
from archs_for_tests import TinyNet
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.models.domain import choose_data, resolve_input_space
from robustbench_lite.models.loading import bounds_pending, open_model
from robustbench_lite.models.meta import parse_meta

ARCH = "archs_for_tests:TinyNet"


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    torch.save(TinyNet().state_dict(), path)
    return path


def test_unknown_bounds_stay_unknown_and_are_logged(
    ckpt: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        model = rbl.load_model(ckpt, arch=ARCH)
    assert bounds_pending(model) and model.bounds == (float("-inf"), float("inf"))
    assert "bounds are unknown" in caplog.text and "bounds=" in caplog.text
    with pytest.raises(rbl.CheckpointError, match="--bounds") as info:
        resolve_input_space(model, "npz:nowhere.npz")
    assert "declares no input domain" in str(info.value)


def test_data_fills_what_nothing_else_gives(ckpt: Path) -> None:
    model = rbl.load_model(ckpt, arch=ARCH, data="digits")
    assert model.bounds == (0.0, 1.0) and model.default_threats == ("linf:0.1", "l2:1")
    space = model.meta["input_space"]
    assert space["bounds"] == {"value": [0.0, 1.0], "source": "dataset digits"}
    assert space["normalization"]["source"] == "dataset digits"
    x, _ = rbl.load_data("digits", n=4)
    shaped = resolve_input_space(open_model(ckpt, arch=ARCH), choose_data(model), x)
    assert shaped.input_shape == (1, 8, 8)
    assert shaped.meta["input_space"]["input_shape"]["source"] == "data digits"


def test_the_caller_wins_over_the_file_and_the_data(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "meta.pt"
    meta = {"bounds": [0, 255], "mean": [0.5], "std": [0.25], "dataset": "digits"}
    torch.save({"state_dict": TinyNet().state_dict(), "rbl_meta": meta}, path)
    from_file = rbl.load_model(path, arch=ARCH)
    assert from_file.bounds == (0.0, 255.0) and from_file.mean == (0.5,)
    assert (
        from_file.meta["input_space"]["bounds"]["source"] == "meta.pt (checkpoint rbl_meta entry)"
    )
    assert from_file.meta["data"]["source"] == "digits"
    given = open_model(path, arch=ARCH, given_by="cli", bounds=(0.0, 1.0))
    assert given.bounds == (0.0, 1.0)
    assert given.meta["input_space"]["bounds"] == {"value": [0.0, 1.0], "source": "--bounds"}
    suite = open_model(path, arch=ARCH, given_by="s.yaml", bounds=(0.0, 1.0))
    assert suite.meta["input_space"]["bounds"]["source"] == "s.yaml model.bounds"


def test_torchscript_extra_file_metadata(tmp_path: Path) -> None:
    path = tmp_path / "net.ts"
    meta = {"bounds": [-1, 1], "input_shape": [1, 8, 8]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(
            torch.jit.script(TinyNet().eval()),
            str(path),
            _extra_files={"rbl_meta.json": json.dumps(meta)},
        )
    model = rbl.load_model(path, trust_checkpoint=True)
    assert model.bounds == (-1.0, 1.0) and model.input_shape == (1, 8, 8)
    assert "TorchScript extra file" in model.meta["input_space"]["bounds"]["source"]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"bound": [0, 1]}, "unknown key 'bound'; did you mean bounds?"),
        ({"bounds": [1, 0]}, "lo must be below hi"),
        ({"bounds": [0, float("inf")]}, "finite"),
        ({"mean": [0.5]}, "give both mean and std"),
        ({"std": [0.0], "mean": [0.0]}, "> 0"),
        ({"input_shape": [1, -8]}, "shape of one sample"),
        ({"dataset": "digit"}, "did you mean digits?"),
        ({"dataset": {"name": "orl", "options": {"size": {"h": 1}}}}, "options must map"),
        ({"default_threats": ["linf:abc"]}, "default_threats"),
        ("[1, 2]", "write a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_metadata_is_refused(raw: object, needle: str) -> None:
    with pytest.raises(rbl.CheckpointError, match="x.pt") as info:
        parse_meta(raw, "x.pt")
    assert needle in str(info.value)


def test_zoo_fields_given_by_the_caller_are_recorded() -> None:
    model = open_model("zoo:digits-mlp", given_by="cli", bounds=(0.0, 2.0))
    assert model.bounds == (0.0, 2.0)
    assert model.meta["input_space"]["bounds"]["source"] == "--bounds"
    assert open_model("zoo:digits-mlp").meta["input_space"]["bounds"]["source"] == "zoo:digits-mlp"


def test_a_hand_made_model_keeps_its_fields() -> None:
    model = rbl.Model(net=nn.Flatten(), bounds=(0.0, 2.0))
    resolved = resolve_input_space(model, "digits")
    assert resolved.bounds == (0.0, 2.0)
    assert resolved.meta["input_space"]["bounds"]["source"] == "the Model object"


def test_torchscript_with_a_scalar_buffer_runs_in_a_suite(tmp_path: Path) -> None:
    """A 0-dim buffer used to crash the run's fingerprint (exit 3)."""

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = TinyNet()
            self.register_buffer("scale", torch.tensor(1.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) * self.scale

    path = tmp_path / "scaled.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(Scaled().eval()).save(str(path))
    suite = tmp_path / "s.yaml"
    suite.write_text("version: 1\ndata: {n: 10}\nchecks:\n  - {id: clean, expect: {}}\n")
    report = rbl.run_suite(suite, rbl.load_model(path, trust_checkpoint=True, data="digits"))
    assert report.env["model_domain"]["input_shape"]["source"] == "data digits"
