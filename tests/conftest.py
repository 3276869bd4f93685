"""Shared fixtures: tiny seeded in-memory models and the digits data.

No root conftest.py exists on purpose (see DESIGN.md P(a)): the plug-in folders must only ever
be imported through the ``robustbench_lite`` namespace.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import robustbench_lite as rbl

BARE_NAMES = ("attacks", "verify", "defenses", "suites")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = [name for name in BARE_NAMES if name in sys.modules]
    if leaked:
        session.exitstatus = 1
        print(
            f"\nplug-in folders imported under bare names {leaked}: import via robustbench_lite.*"
        )


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Zoo models train into the CI cache when set, else into a per-session temporary folder."""
    if not os.environ.get("RBL_CACHE_DIR"):
        os.environ["RBL_CACHE_DIR"] = str(tmp_path_factory.mktemp("rbl-cache"))
    yield


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for the module: tiny models run many small ops, and two threads on a
    shared 2-core machine are many times slower (measured). Restores the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """200 test digits (N, 1, 8, 8) in [0, 1] and their labels."""
    return rbl.load_data("digits", split="test", n=200)


@pytest.fixture(scope="session")
def digits_cnn() -> rbl.Model:
    return rbl.load_model("zoo:digits-cnn")


@pytest.fixture(scope="session")
def digits_mlp() -> rbl.Model:
    return rbl.load_model("zoo:digits-mlp")


@pytest.fixture(scope="session")
def tiny_mlp() -> rbl.Model:
    """An untrained seeded 2-16-3 ReLU MLP on 2-D inputs in [0, 1]."""
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return rbl.Model(net=net, name="tiny-mlp", input_shape=(2,), num_classes=3)


def data_dir_or_skip(subfolder: str) -> Path:
    """``$RBL_DATA_DIR/subfolder``, or skip the test with the reason."""
    root = os.environ.get("RBL_DATA_DIR")
    if not root or not (Path(root) / subfolder).is_dir():
        pytest.skip(f"needs the data folder: set RBL_DATA_DIR to a folder holding {subfolder}/")
    return Path(root) / subfolder


@pytest.fixture(scope="session")
def package_imported() -> None:
    """The whole package and its plug-ins, imported before a pytester run.

    pytester's in-process runs drop every module they imported when they end; later imports
    would then create second copies of classes and functions that the registries, catalogs and
    pickled worker functions still hold the first copies of. Imported first, the package is in
    pytester's snapshot and nothing is dropped. The plugin tests use it (``pytestmark``).
    """
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(rbl.__path__, "robustbench_lite."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for listing in (rbl.list_attacks, rbl.list_verifiers, rbl.list_defenses, rbl.list_detectors):
        listing()  # the plug-in folders, through their entry points
