"""FMN's perturbation sizes: per-sample, measured by the base class, medians over all shards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.report.values import result_values

pytestmark = pytest.mark.usefixtures("one_thread")

SUITE = """\
version: 1
name: fmn-shards
seed: 3
shard_size: {shard_size}
model: {{checkpoint: zoo:digits-mlp}}
data: {{source: digits, n: 20}}
checks:
  - {{id: fmn, attack: fmn, params: {{steps: 30}}, threat: "l2:3", expect: {{}}}}
"""


def _fmn_check(tmp_path: Path, shard_size: int) -> rbl.CheckResult:
    path = tmp_path / f"suite-{shard_size}.yaml"
    path.write_text(SUITE.format(shard_size=shard_size))
    (check,) = rbl.run_suite(path).results
    return check


def test_two_shards_give_the_one_shard_median(tmp_path: Path) -> None:
    one = _fmn_check(tmp_path, 20)
    two = _fmn_check(tmp_path, 13)  # shards of 13 and 7 samples: unequal weights
    assert [c["stop"] - c["start"] for c in two.detail["cells"]] == [13, 7]
    assert one.values["clean_accuracy"] == 1.0  # so the successes are the samples that count
    ok = torch.tensor(one.detail["success"])
    assert 2 <= int(ok.sum()) < len(ok)  # some successes, some failures: a real median
    assert two.detail["success"] == one.detail["success"]
    for norm in ("l2", "linf"):
        sizes = torch.tensor(two.detail["sizes"][norm], dtype=torch.float64)
        assert two.values[f"{norm}_median"] == pytest.approx(float(sizes[ok].median()))
        assert two.values[f"{norm}_median"] == pytest.approx(one.values[f"{norm}_median"])
        assert two.values[f"{norm}_mean"] == pytest.approx(one.values[f"{norm}_mean"])
    assert "median_norm" not in two.values  # no per-shard median left to average


def test_sizes_are_the_returned_points_norms_over_successes_only() -> None:
    model = rbl.load_model("zoo:digits-mlp")
    x, y = rbl.load_data("digits", n=20)
    result = rbl.create_attack("fmn", steps=30)(model, x, y, "l2:3")
    delta = (result.x_adv - x).flatten(1).double()
    torch.testing.assert_close(result.sizes["l2"], delta.norm(dim=1))
    ok = result.success & result.clean_correct
    assert 2 <= int(ok.sum()) < len(ok)
    values = result_values(result)
    assert values["l2_median"] == float(delta.norm(dim=1)[ok].median())
    assert values["l2_median"] <= 3 + 1e-6  # successes lie in the threat's ball
