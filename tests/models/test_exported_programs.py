"""``torch.export`` ``.pt2`` files: loaded without --trust-checkpoint, and nothing from the file runs.

``torch.export.load`` plus ``ep.module()`` as shipped run code from a crafted archive (guard code
goes through ``exec``, shape expressions through ``sympy.sympify``, any dotted ``torch.*`` name
becomes a graph call, pickled payloads are unpickled, AOTInductor libraries are loaded); the
loader checks the archive first. Each crafted file below would touch a marker file if run.
"""

from __future__ import annotations

import json
import logging
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.models.exported import check_exported_archive, is_exported_program


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(4 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


def _export(path: Path, *, dynamic: bool = True, meta: dict[str, Any] | None = None) -> nn.Module:
    torch.manual_seed(0)
    net = Net().eval()
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (torch.rand(2, 1, 8, 8),), dynamic_shapes=shapes)
        extra = {"rbl_meta.json": json.dumps(meta)} if meta else None
        torch.export.save(program, path, extra_files=extra)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    path = tmp_path_factory.mktemp("pt2") / "net.pt2"
    return path, _export(path)


def _rewrite(src: Path, dst: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("models/model.json"):
                doc = json.loads(data)
                mutate(doc)
                data = json.dumps(doc).encode()
            elif info.filename.endswith("model_weights_config.json"):
                doc = json.loads(data)
                mutate(doc)
                data = json.dumps(doc).encode()
            zout.writestr(info, data)
    return dst


def test_loads_without_trust_and_runs_any_batch(exported: tuple[Path, nn.Module]) -> None:
    path, net = exported
    assert is_exported_program(path)
    model = rbl.load_model(path, bounds=(0.0, 1.0))
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-6)
    assert model.meta["format"] == "pt2" and model.input_shape == (1, 8, 8)
    assert model.meta["input_space"]["input_shape"]["source"] == "net.pt2 (graph)"
    x.requires_grad_(True)
    model(x).sum().backward()  # attacks need gradients through the graph
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_fixed_batch_program_runs_other_batch_sizes(tmp_path: Path) -> None:
    path = tmp_path / "fixed.pt2"
    net = _export(path, dynamic=False)
    model = rbl.load_model(path, bounds=(0.0, 1.0))
    for n in (1, 2, 5):
        x = torch.rand(n, 1, 8, 8)
        with torch.no_grad():
            assert torch.allclose(model(x), net(x), atol=1e-6)


def test_metadata_in_the_extra_file(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt2"
    _export(path, meta={"bounds": [0, 1], "dataset": "digits", "num_classes": 10})
    model = rbl.load_model(path)
    assert model.bounds == (0.0, 1.0) and model.num_classes == 10
    assert "rbl_meta.json" in model.meta["input_space"]["bounds"]["source"]
    assert model.meta["data"]["source"] == "digits"
    x, y = rbl.load_data(model, n=5)  # the model's own data
    assert x.shape == (5, 1, 8, 8)


def _guard(doc: dict[str, Any], marker: Path) -> None:
    if "graph_module" in doc:
        doc["guards_code"] = [f"__import__('pathlib').Path({str(marker)!r}).touch() or True"]


def _expression(doc: dict[str, Any], marker: Path) -> None:
    if "graph_module" in doc:
        size = doc["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0]
        size["as_expr"]["expr_str"] = (
            f"__import__('pathlib').Path({str(marker)!r}).touch() or "
            "Symbol('s77', positive=True, integer=True)"
        )


def _target(doc: dict[str, Any], marker: Path) -> None:
    if "graph_module" in doc:
        doc["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"


def _pickled(doc: dict[str, Any], marker: Path) -> None:
    if "config" in doc:
        next(iter(doc["config"].values()))["use_pickle"] = True


def _name(doc: dict[str, Any], marker: Path) -> None:
    if "graph_module" in doc:
        spec = doc["graph_module"]["signature"]["input_specs"][0]
        spec["parameter"]["parameter_name"] = 'net")+__import__("os").getcwd()+("'


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (_guard, "more than a size comparison"),
        (_expression, "uses '__import__', not sympy"),
        (_target, "calls 'torch.os.system', not a torch operator"),
        (_pickled, "stores a pickled tensor"),
        (_name, "is not a plain identifier"),
    ],
)
def test_crafted_archives_are_refused_before_anything_runs(
    exported: tuple[Path, nn.Module],
    tmp_path: Path,
    mutate: Callable[[dict[str, Any], Path], None],
    needle: str,
) -> None:
    marker = tmp_path / "ran"
    bad = _rewrite(exported[0], tmp_path / "bad.pt2", lambda doc: mutate(doc, marker))
    with pytest.raises(rbl.CheckpointError) as info:
        rbl.load_model(bad, bounds=(0.0, 1.0))
    assert needle in str(info.value) and "--trust-checkpoint" in str(info.value)
    assert not marker.exists()


def test_the_checks_matter_torch_alone_runs_the_guard(
    exported: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    """Without the check, torch.export.load + module() executes the file's guard code."""
    marker = tmp_path / "ran"
    bad = _rewrite(exported[0], tmp_path / "bad.pt2", lambda doc: _guard(doc, marker))
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(str(bad))
            program.module()(torch.rand(2, 1, 8, 8))
    finally:
        export_log.setLevel(level)
    assert marker.exists()


def test_compiled_libraries_and_unknown_members_are_refused(
    exported: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    bad = tmp_path / "aoti.pt2"
    with zipfile.ZipFile(exported[0]) as zin, zipfile.ZipFile(bad, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        zout.writestr(f"{root}/data/aotinductor/model/model.so", b"\x7fELF")
    with pytest.raises(rbl.CheckpointError, match="not part of a plain program"):
        check_exported_archive(bad)


def test_arch_with_a_pt2_is_refused(exported: tuple[Path, nn.Module]) -> None:
    with pytest.raises(rbl.CheckpointError, match="drop --arch"):
        rbl.load_model(exported[0], arch="torch.nn:Identity")


def test_pickles_as_its_checked_archive(exported: tuple[Path, nn.Module]) -> None:
    """Worker processes get the network as the archive's bytes, checked and loaded again."""
    import copy
    import pickle

    model = rbl.load_model(exported[0], bounds=(0.0, 1.0))
    x = torch.rand(3, 1, 8, 8)
    for twin in (pickle.loads(pickle.dumps(model.net)), copy.deepcopy(model.net)):
        with torch.no_grad():
            assert torch.equal(twin(x), model.net(x))
