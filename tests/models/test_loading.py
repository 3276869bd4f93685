"""rbl.load_model: state_dicts with an arch, TorchScript, zoo names, and every bad checkpoint."""

from __future__ import annotations

import pickle
import random
import warnings
from pathlib import Path

import pytest
import torch
from archs_for_tests import TinyNet
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.models.loading import file_sha256, pickle_imports

ARCH = "archs_for_tests:TinyNet"


class WritesMarker:
    """Unpickling this runs ``Path(marker).touch()``: the code a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


@pytest.fixture()
def tiny_ckpt(tmp_path: Path) -> tuple[Path, TinyNet]:
    torch.manual_seed(0)
    net = TinyNet()
    path = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), path)
    return path, net


def _same_function(model: rbl.Model, net: nn.Module) -> None:
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), net.eval()(x), atol=1e-6)


@pytest.mark.parametrize("arch", [ARCH, "archs_for_tests:tiny_net", "archs_for_tests:INSTANCE"])
def test_state_dict_with_arch(tiny_ckpt: tuple[Path, TinyNet], arch: str) -> None:
    path, net = tiny_ckpt
    model = rbl.load_model(path, arch=arch, bounds=(0.0, 1.0), num_classes=10, name="tiny")
    _same_function(model, net)
    assert model.name == "tiny" and model.num_classes == 10
    assert (
        model.meta["checkpoint_sha256"] == file_sha256(path)
        and model.meta["format"] == "state_dict"
    )
    assert not model.net.training


def test_wrapped_state_dict_and_from_checkpoint(
    tmp_path: Path, tiny_ckpt: tuple[Path, TinyNet]
) -> None:
    _, net = tiny_ckpt
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, wrapped)
    _same_function(rbl.load_model(wrapped, arch=ARCH), net)
    assert rbl.load_model(wrapped, arch=ARCH).name == "wrapped.pt"


def test_torchscript(tmp_path: Path) -> None:
    net = TinyNet().eval()
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(path))
    with pytest.raises(rbl.CheckpointError, match="--trust-checkpoint"):
        rbl.load_model(path, input_shape=(1, 8, 8))  # TorchScript runs code: the caller trusts it
    model = rbl.load_model(path, input_shape=(1, 8, 8), trust_checkpoint=True)
    _same_function(model, net)
    assert model.meta["format"] == "torchscript" and model.input_shape == (1, 8, 8)


def test_zoo_spec_and_model_passthrough(digits_cnn: rbl.Model) -> None:
    assert rbl.load_model(digits_cnn) is digits_cnn
    assert rbl.load_model("zoo:digits-cnn").name == "zoo:digits-cnn"
    with pytest.raises(
        rbl.RegistryError, match="unknown zoo model 'digits-cn'; did you mean digits-cnn"
    ):
        rbl.load_model("zoo:digits-cn")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(rbl.CheckpointError, match="does not exist"):
        rbl.load_model(tmp_path / "nope.pt", arch=ARCH)
    with pytest.raises(rbl.CheckpointError, match="zoo models are written zoo:NAME"):
        rbl.load_model("digits-cnn")
    with pytest.raises(rbl.CheckpointError, match="unknown option 'bounds_'"):
        rbl.load_model("zoo:digits-cnn", bounds_=(0, 1))


@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
@pytest.mark.parametrize("arch", [ARCH, None])
def test_damaged_checkpoints(
    tmp_path: Path, tiny_ckpt: tuple[Path, TinyNet], damage: str, arch: str | None
) -> None:
    good = tiny_ckpt[0].read_bytes()
    data = {
        "truncated": good[: len(good) // 2],
        "random": random.Random(0).randbytes(4096),
        "empty": b"",
    }[damage]
    path = tmp_path / f"{damage}.pt"
    path.write_bytes(data)
    with pytest.raises(rbl.CheckpointError) as info:
        rbl.load_model(path, arch=arch)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert (
        "not a readable PyTorch checkpoint" in msg
        or "not a TorchScript archive" in msg
        or ("not a loadable TorchScript file" in msg)
    )
    assert "can run code" not in msg  # damage is not reported as a security refusal


@pytest.mark.parametrize("arch", [ARCH, None])
def test_random_bytes_always_give_a_checkpoint_error(tmp_path: Path, arch: str | None) -> None:
    """Garbage makes torch's unpickler fail in many ways (IndexError, KeyError, struct.error were
    seen); every one must reach the user as a CheckpointError, never as a traceback."""
    path = tmp_path / "garbage.pt"
    for seed in range(400):
        r = random.Random(seed)
        path.write_bytes(r.randbytes(r.choice([1, 7, 64, 512, 4096])))
        with pytest.raises(rbl.CheckpointError):
            rbl.load_model(path, arch=arch)


def test_state_dict_that_does_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).state_dict(), path)
    with pytest.raises(rbl.CheckpointError) as info:
        rbl.load_model(path, arch=ARCH)
    msg = str(info.value)
    assert (
        "missing keys [fc.weight, fc.bias]" in msg and "unexpected keys [1.weight, 1.bias]" in msg
    )
    shapes = tmp_path / "shapes.pt"
    torch.save({"fc.weight": torch.zeros(5, 64), "fc.bias": torch.zeros(5)}, shapes)
    with pytest.raises(
        rbl.CheckpointError, match=r"shape mismatch \[fc.weight \(5, 64\) vs \(10, 64\)"
    ):
        rbl.load_model(shapes, arch=ARCH)
    not_tensors = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(rbl.CheckpointError, match="does not hold a state_dict"):
        rbl.load_model(not_tensors, arch=ARCH)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_running_pickle_is_refused_and_nothing_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    payload = {"fc.weight": WritesMarker(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as fh:
            pickle.dump(payload, fh)
    assert any(name.startswith("pathlib.") for name in pickle_imports(path) or [])
    with pytest.raises(rbl.CheckpointError) as info:
        rbl.load_model(path, arch=ARCH)
    assert "needs full unpickling, which can run code" in str(info.value)
    assert "trust_checkpoint=True" in str(info.value)
    assert not marker.exists(), "the refused checkpoint ran code"
    if writer == "torch.save":  # the refusal is what stopped it: trusted, the payload does run
        with pytest.raises(rbl.CheckpointError, match="does not hold a state_dict"):
            rbl.load_model(path, arch=ARCH, trust_checkpoint=True)
        assert marker.exists()


def test_not_a_torchscript_file(tmp_path: Path, tiny_ckpt: tuple[Path, TinyNet]) -> None:
    with pytest.raises(rbl.CheckpointError, match="pass --arch package.module:Class"):
        rbl.load_model(tiny_ckpt[0])  # a state_dict without --arch
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(rbl.CheckpointError, match="is not a TorchScript archive"):
        rbl.load_model(text)


@pytest.mark.parametrize(
    ("arch", "needle"),
    [
        ("TinyNet", "write it as package.module:ClassOrFactory"),
        ("archs_for_tests:", "write it as package.module:ClassOrFactory"),
        ("archs_for_tests:Tiny Net", "write it as package.module:ClassOrFactory"),
        ("no_such_module_xyz:Net", "cannot import no_such_module_xyz"),
        ("archs_for_tests:Nope", "has no attribute Nope"),
        ("archs_for_tests:NeedsArgs", "calling NeedsArgs() failed (TypeError"),
        ("archs_for_tests:NOT_A_MODULE", "gave a int, not a torch.nn.Module"),
    ],
)
def test_bad_arch(tiny_ckpt: tuple[Path, TinyNet], arch: str, needle: str) -> None:
    with pytest.raises(rbl.CheckpointError) as info:
        rbl.load_model(tiny_ckpt[0], arch=arch)
    assert needle in str(info.value)
