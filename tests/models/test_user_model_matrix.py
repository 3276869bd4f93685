"""Six user-style networks x four formats x three front doors give identical numbers.

Each network is written the way users write them (a module file imported through ``--arch``),
trained briefly on the digits, saved as a state_dict, TorchScript, ``torch.export`` ``.pt2`` and
ONNX, and measured through ``attack``, ``evaluate`` and a suite with the same seed: clean and
robust accuracy must be identical across the four formats.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.cli.main import main

MODULE = "rbl_user_matrix_nets"
SOURCE = """
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SequentialInside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 64, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NormalizedInside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.3))
        self.register_buffer("std", torch.tensor(0.4))
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.head = nn.Linear(6 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv((x - self.mean) / self.std))
        return self.head(h.flatten(1))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 1, 3, padding=1)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x + self.conv2(torch.relu(self.conv1(x))))
        return self.head(y.flatten(1))


class BatchNormEval(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.head = nn.Linear(6 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


class ReshapesInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 24)
        self.fc2 = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.reshape(x.shape[0], -1))))
"""
NETS = ("MLP", "SequentialInside", "NormalizedInside", "Residual", "BatchNormEval", "ReshapesInput")
FORMATS = ("state_dict", "torchscript", "pt2", "onnx")
SUITE = """\
version: 1
name: matrix
seed: 0
shard_size: 16
model: {{checkpoint: {checkpoint}{extra}}}
data: {{source: digits, n: 40}}
checks:
  - {{id: clean, expect: {{}}}}
  - {{id: fgsm, attack: fgsm, threat: "linf:0.1", expect: {{}}}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("matrix")
    (path / f"{MODULE}.py").write_text(SOURCE)
    return path


def _net(folder: Path, name: str) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location(f"{MODULE}_train", folder / f"{MODULE}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net: torch.nn.Module = getattr(module, name)()
    x, y = rbl.load_data("digits", split="train")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for start in range(0, len(y), 32):  # one epoch: enough to make robust accuracy informative
        loss = torch.nn.functional.cross_entropy(net(x[start : start + 32]), y[start : start + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _save(net: torch.nn.Module, folder: Path, name: str) -> dict[str, Path]:
    paths = {f: folder / f"{name}.{ext}" for f, ext in zip(FORMATS, ("pt", "ts", "pt2", "onnx"))}
    example = torch.rand(2, 1, 8, 8)
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript and the legacy exporter
        warnings.simplefilter("ignore")
        torch.save(net.state_dict(), paths["state_dict"])
        torch.jit.save(torch.jit.script(net), str(paths["torchscript"]))
        program = torch.export.export(
            net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
        torch.export.save(program, paths["pt2"])
        torch.onnx.export(
            net,
            (example,),
            str(paths["onnx"]),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
        )
    return paths


def _model_args(fmt: str, path: Path, name: str) -> list[str]:
    if fmt == "state_dict":
        return [str(path), "--arch", f"{MODULE}:{name}"]
    if fmt == "torchscript":
        return [str(path), "--trust-checkpoint"]
    return [str(path)]


def _values(report: Path) -> dict[str, tuple[float, Any]]:
    checks = json.loads(report.read_text())["checks"]
    return {
        c["id"]: (c["values"]["clean_accuracy"], c["values"].get("robust_accuracy")) for c in checks
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", NETS)
def test_every_format_gives_the_same_numbers_through_every_front_door(
    folder: Path, name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(folder)  # --arch finds the module in the current folder
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(MODULE, None)
    paths = _save(_net(folder, name), folder, name)
    seen: dict[str, dict[str, Any]] = {}
    for fmt, path in paths.items():
        model = _model_args(fmt, path, name)
        out = folder / f"{name}-{fmt}"
        attack = ["attack", "fgsm", "--model", *model, "--threat", "linf:0.1", "--n", "40"]
        assert main([*attack, "--report", f"{out}-attack.json"]) == 0, capsys.readouterr().err
        evaluate = ["evaluate", *model, "--n", "16", "--quick", "--no-db", "-q"]
        assert main([*evaluate, "--report", f"{out}-evaluate.json"]) == 0, capsys.readouterr().err
        extra = ", arch: " + f"{MODULE}:{name}" if fmt == "state_dict" else ""
        extra += ", trust_checkpoint: true" if fmt == "torchscript" else ""
        suite = folder / f"{name}-{fmt}.yaml"
        suite.write_text(SUITE.format(checkpoint=path.name, extra=extra))
        trust = ["--trust-checkpoint"] if fmt == "torchscript" else []
        run = ["run", str(suite), "--no-db", "-q", *trust, "--report", f"{out}-run.json"]
        assert main(run) == 0, capsys.readouterr().err
        seen[fmt] = {
            door: _values(Path(f"{out}-{door}.json")) for door in ("attack", "evaluate", "run")
        }
    reference = seen["state_dict"]
    for fmt in FORMATS:
        assert seen[fmt] == reference, (name, fmt, seen[fmt], reference)
    clean, robust = reference["attack"]["fgsm-linf:0.1"]
    assert clean > 0.5 and robust is not None and robust <= clean
    assert reference["run"]["fgsm"] == reference["attack"]["fgsm-linf:0.1"]  # fgsm: no randomness
    print(textwrap.shorten(f"{name}: {reference}", 400))
