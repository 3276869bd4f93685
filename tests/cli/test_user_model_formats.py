"""A user's own CNN (``nn.Sequential`` inside an ``nn.Module``) through every format and front door.

The network is trained briefly on the digits and saved as a state_dict (+ ``--arch``),
TorchScript, a ``torch.export`` ``.pt2`` and ONNX. ``attack`` and ``evaluate`` must give the same
clean and robust accuracy for all four; the input domain is never guessed (ONNX without bounds on
data without a declared domain exits 2 naming ``--bounds``), metadata bounds are used and
recorded, a non-zoo model gets its data's default threats, ``verify --model`` infers the input
shape, and ``--arch`` finds its module in the current folder and in a suite's folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.cli.main import main

MODULE = "rbl_user_cnn_arch"
ARCH = f"{MODULE}:UserCNN"
SOURCE = '''
import torch
from torch import nn


class UserCNN(nn.Module):
    """The way users write it: the layers in an nn.Sequential attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
'''
FORMATS = ("state_dict", "torchscript", "pt2", "onnx")
N = 60


def _build(folder: Path) -> torch.nn.Module:
    (folder / f"{MODULE}.py").write_text(SOURCE)
    spec = importlib.util.spec_from_file_location(f"{MODULE}_build", folder / f"{MODULE}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    net: torch.nn.Module = mod.UserCNN()
    x, y = rbl.load_data("digits", split="train")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(4):
        for start in range(0, len(y), 64):
            loss = torch.nn.functional.cross_entropy(
                net(x[start : start + 64]), y[start : start + 64]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def _save_all(
    net: torch.nn.Module, folder: Path, meta: dict[str, Any] | None = None
) -> dict[str, Path]:
    """The network in the four formats (with ``rbl_meta`` when ``meta`` is given)."""
    import onnx

    tag = "_meta" if meta else ""
    text = json.dumps(meta) if meta else None
    paths = {f: folder / f"cnn{tag}.{ext}" for f, ext in zip(FORMATS, ("pt", "ts", "pt2", "onnx"))}
    example = torch.rand(2, 1, 8, 8)
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript and the legacy exporter
        warnings.simplefilter("ignore")
        if meta:
            torch.save({"state_dict": net.state_dict(), "rbl_meta": meta}, paths["state_dict"])
        else:
            torch.save(net.state_dict(), paths["state_dict"])
        extra = {"rbl_meta.json": text} if text else {}
        torch.jit.save(torch.jit.script(net), str(paths["torchscript"]), _extra_files=extra)
        program = torch.export.export(
            net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
        torch.export.save(program, paths["pt2"], extra_files=extra)
        torch.onnx.export(
            net,
            (example,),
            str(paths["onnx"]),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
        )
    if text:
        proto = onnx.load(str(paths["onnx"]))
        onnx.helper.set_model_props(proto, {"rbl_meta": text})
        onnx.save(proto, str(paths["onnx"]))
    return paths


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("user_model")
    net = _build(folder)
    files = _save_all(net, folder)
    meta_files = _save_all(net, folder, {"bounds": [0, 1], "dataset": "digits"})
    x, y = rbl.load_data("digits", n=40)
    np.savez(folder / "plain.npz", x=x.numpy(), y=y.numpy())
    return {"folder": folder, "files": files, "meta": meta_files}


def _model_args(fmt: str, path: Path) -> list[str]:
    if fmt == "state_dict":
        return [str(path), "--arch", ARCH]
    if fmt == "torchscript":
        return [str(path), "--trust-checkpoint"]
    return [str(path)]


def _checks(report: Path) -> list[dict[str, Any]]:
    doc = json.loads(report.read_text())
    return list(doc.get("checks") or doc.get("results") or [])


def _values(report: Path) -> dict[str, tuple[float, float | None]]:
    return {
        c["id"]: (c["values"]["clean_accuracy"], c["values"].get("robust_accuracy"))
        for c in _checks(report)
    }


def test_attack_and_evaluate_agree_across_formats(
    user_files: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(user_files["folder"])  # --arch finds its module in the current folder
    attack: dict[str, Any] = {}
    evaluate: dict[str, Any] = {}
    for fmt, path in user_files["files"].items():
        model = _model_args(fmt, path)
        out = tmp_path / f"attack-{fmt}.json"
        argv = ["attack", "fgsm", "--model", *model, "--threat", "linf:0.1", "--n", str(N)]
        assert main([*argv, "--seed", "0", "--report", str(out)]) == 0, capsys.readouterr().err
        attack[fmt] = _values(out)
        domain = json.loads(out.read_text())["env"]["model_domain"]
        assert domain["bounds"] == {"value": [0.0, 1.0], "source": "dataset digits"}, fmt
        assert domain["input_shape"]["value"] == [1, 8, 8]
        out = tmp_path / f"evaluate-{fmt}.json"
        argv = ["evaluate", *model, "--n", "20", "--no-db", "-q", "--report", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        evaluate[fmt] = _values(out)
    print("attack fgsm linf:0.1 (clean, robust):", attack)
    print("evaluate (clean, robust):", evaluate)
    assert all(v == attack["state_dict"] for v in attack.values()), attack
    assert all(v == evaluate["state_dict"] for v in evaluate.values()), evaluate
    clean, robust = attack["state_dict"]["fgsm-linf:0.1"]
    assert clean > 0.8 and robust is not None and robust < clean
    # a model that is not in the zoo gets its data's default threats (digits: linf 0.1, l2 1)
    assert set(evaluate["onnx"]) == {"clean", "standard@linf:0.1", "standard@l2:1"}


def test_onnx_without_bounds_on_data_without_a_domain_exits_2(
    user_files: dict[str, Any], capsys: Any
) -> None:
    data = f"npz:{user_files['folder'] / 'plain.npz'}"
    onnx_path = str(user_files["files"]["onnx"])
    argv = ["attack", "fgsm", "--model", onnx_path, "--data", data, "--threat", "linf:0.1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bounds" in err and "bounds are unknown" in err
    assert main(["evaluate", onnx_path, "--data", data, "--no-db", "-q"]) == 2
    assert "--bounds" in capsys.readouterr().err
    # with --bounds it runs, and the report says where the bounds came from
    assert main([*argv, "--bounds", "0,1", "--n", "10"]) == 0


def test_metadata_bounds_are_used_and_recorded(
    user_files: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(user_files["folder"])
    data = f"npz:{user_files['folder'] / 'plain.npz'}"  # declares no domain: only the file can
    numbers = {}
    for fmt, path in user_files["meta"].items():
        out = tmp_path / f"{fmt}.json"
        argv = ["attack", "fgsm", "--model", *_model_args(fmt, path), "--data", data]
        assert main([*argv, "--threat", "linf:0.1", "--report", str(out)]) == 0, (
            capsys.readouterr().err
        )
        bounds = json.loads(out.read_text())["env"]["model_domain"]["bounds"]
        assert bounds["value"] == [0.0, 1.0] and path.name in bounds["source"], bounds
        assert "rbl_meta" in bounds["source"]
        numbers[fmt] = _values(out)
    assert all(v == numbers["state_dict"] for v in numbers.values()), numbers
    # --bounds wins over the metadata, and says so
    out = tmp_path / "cli.json"
    argv = ["attack", "fgsm", "--model", str(user_files["meta"]["pt2"]), "--data", data]
    assert main([*argv, "--threat", "linf:0.1", "--bounds", "0,1", "--report", str(out)]) == 0
    assert json.loads(out.read_text())["env"]["model_domain"]["bounds"]["source"] == "--bounds"
    # the metadata's dataset is the model's default data
    out = tmp_path / "own.json"
    argv = ["attack", "fgsm", "--model", str(user_files["meta"]["onnx"]), "--n", "5"]
    assert main([*argv, "--threat", "linf:0.1", "--report", str(out)]) == 0
    assert json.loads(out.read_text())["env"]["data"]["source"] == "digits"


def test_evaluate_names_threat_when_data_has_no_defaults(
    user_files: dict[str, Any], capsys: Any
) -> None:
    data = f"npz:{user_files['folder'] / 'plain.npz'}"
    argv = ["evaluate", str(user_files["files"]["pt2"]), "--data", data, "--bounds", "0,1"]
    assert main([*argv, "--no-db", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--threat" in err and "builtin:standard" not in err
    assert main([*argv, "--no-db", "-q", "--threat", "linf:0.05", "--n", "10"]) == 0


def test_verify_infers_the_input_shape(
    user_files: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(user_files["folder"])
    out = tmp_path / "verify.json"
    model = _model_args("state_dict", user_files["files"]["state_dict"])
    argv = ["verify", "--model", *model, "--threat", "linf:0.002", "--n", "2", "--workers", "1"]
    assert main([*argv, "--report", str(out)]) == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["env"]["model_domain"]["input_shape"] == {
        "value": [1, 8, 8],
        "source": "data digits",
    }
    check = _checks(out)[0]
    assert check["values"]["unknown_fraction"] < 1.0  # it ran: the shape reached the verifier
    argv = [*argv[:-2], "--n", "1", "--input-shape", "1,8,8", "--report", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    shape = json.loads(out.read_text())["env"]["model_domain"]["input_shape"]
    assert shape == {"value": [1, 8, 8], "source": "--input-shape"}
    assert main([*argv[:-2], "--input-shape", "64"]) == 2  # does not fit the data: bad input
    assert "does not fit" in capsys.readouterr().err


def test_arch_from_the_current_folder_in_the_console_script(user_files: dict[str, Any]) -> None:
    """The installed script (whose sys.path does not hold the current folder) finds the module."""
    script = Path(sys.executable).parent / "robustbench-lite"
    env = {**os.environ, "PYTHONPATH": ""}
    path = str(user_files["files"]["state_dict"])
    argv = [str(script), "attack", "fgsm", "--model", path, "--threat", "linf:0.1", "--n", "5"]
    ok = subprocess.run(
        [*argv, "--arch", ARCH], cwd=user_files["folder"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    typo = subprocess.run(
        [*argv, "--arch", f"{MODULE}:UserCN"],
        cwd=user_files["folder"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert typo.returncode == 2 and "did you mean UserCNN?" in typo.stderr, typo.stderr


def test_arch_from_the_suite_folder(
    user_files: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # not the suite's folder
    suite = user_files["folder"] / "suite.yaml"
    suite.write_text(
        "version: 1\n"
        f"model: {{checkpoint: {user_files['files']['state_dict'].name}, arch: '{ARCH}'}}\n"
        "data: {n: 20}\n"
        "checks:\n"
        "  - {id: clean, expect: {clean_accuracy: '>= 0.5'}}\n"
        "  - {id: fgsm, attack: fgsm, threat: default, expect: {}}\n"
    )
    out = tmp_path / "suite.json"
    assert main(["run", str(suite), "--no-db", "-q", "--report", str(out)]) == 0, (
        capsys.readouterr().err
    )
    doc = json.loads(out.read_text())
    assert doc["env"]["model_domain"]["bounds"]["source"] == "dataset digits"
    assert {c["id"] for c in _checks(out)} == {"clean", "fgsm@linf:0.1", "fgsm@l2:1"}
    bad = user_files["folder"] / "typo.yaml"
    bad.write_text(suite.read_text().replace(ARCH, f"{MODULE}:UserCNM"))
    assert main(["run", str(bad), "--no-db", "-q"]) == 2
    assert "did you mean UserCNN?" in capsys.readouterr().err


def test_zoo_orl_cnn_defaults_to_its_orl_data(tmp_path: Path, capsys: Any) -> None:
    root = os.environ.get("RBL_DATA_DIR")
    if not root or not (Path(root) / "att_faces_orl").is_dir():
        pytest.skip("RBL_DATA_DIR lacks att_faces_orl")
    out = tmp_path / "orl.json"
    argv = ["attack", "quadattack", "--model", "zoo:orl-cnn", "--threat", "none:top_k:5"]
    assert main([*argv, "--n", "3", "--report", str(out)]) == 0, capsys.readouterr().err
    env = json.loads(out.read_text())["env"]
    assert env["data"] == {
        "source": "orl",
        "options": {"size": [56, 46]},
        "chosen_by": "zoo:orl-cnn",
    }
    # --data orl means the model's own ORL, at its size
    assert main([*argv, "--n", "3", "--data", "orl"]) == 0, capsys.readouterr().err
