"""The same suite on the local, process and Ray executors gives the same report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import robustbench_lite as rbl
from robustbench_lite.core.errors import ExecutorError
from robustbench_lite.report.formats import comparable
from robustbench_lite.suite.executors import preflight

SUITE = """\
version: 1
name: executors
seed: 11
shard_size: 8
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 20}
defenses: {bits4: {use: bit_depth, bits: 4}}
checks:
  - {id: clean, expect: {clean_accuracy: ">= 0.9"}}
  - {id: pgd, attack: pgd, params: {steps: 3}, threat: "linf:0.1", expect: {robust_accuracy: ">= 0"}}
  - {id: pgd-bits4, attack: pgd, params: {steps: 3}, defense: bits4, threat: "l2:1", expect: {}}
"""
HAVE_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("executors") / "suite.yaml"
    path.write_text(SUITE)
    return path


@pytest.fixture(scope="module")
def local_report(suite_path: Path) -> dict:
    return comparable(rbl.run_suite(suite_path, executor="local"))


def test_process_pool_gives_the_local_report(suite_path: Path, local_report: dict) -> None:
    report = rbl.run_suite(suite_path, executor="process", workers=2)
    assert report.env["executor"] == "process"
    assert comparable(report) == local_report


@pytest.mark.skipif(
    not HAVE_RAY, reason='Ray is not installed: pip install -e ".[ray]" to run this test'
)
def test_ray_local_cluster_gives_the_local_report(suite_path: Path, local_report: dict) -> None:
    report = rbl.run_suite(suite_path, executor="ray", workers=2)
    assert report.env["executor"] == "ray"
    assert comparable(report) == local_report


def test_unreachable_ray_and_unknown_executor_fail_before_work() -> None:
    if HAVE_RAY:
        with pytest.raises(ExecutorError, match="cannot reach a Ray cluster at '127.0.0.1:1'"):
            preflight("ray", "127.0.0.1:1")
        with pytest.raises(ExecutorError, match="write host:port"):
            preflight("ray", "nowhere")
    with pytest.raises(ExecutorError, match="unknown executor 'threads'"):
        rbl.run_suite("builtin:smoke", executor="threads")


def test_model_that_cannot_travel_is_a_clear_error(suite_path: Path, digits_cnn: rbl.Model) -> None:
    from torch import nn

    class Hooked(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.post = lambda t: t  # lambdas cannot be pickled

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.post(self.inner(x))

    model = rbl.Model(
        net=Hooked(digits_cnn.net), name="hooked", input_shape=(1, 8, 8), num_classes=10
    )
    with pytest.raises(ExecutorError, match="cannot be sent to worker processes.*--executor local"):
        rbl.run_suite(suite_path, model, executor="process", workers=1, n=10)
