"""Fusion patch attacks in suites, the CLI and the reports: mapping inputs through shards, the
store and the executors; fusion metrics equal to a direct computation on the same scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.datasets import load_inputs
from robustbench_lite.datasets.fusion_world import scenes_of
from robustbench_lite.suite.cells import cell_seed
from robustbench_lite.suite.schema import builtin_names, load_suite
from robustbench_lite.worlds.fusion_world import mean_detection_score, target_score, toy_ap

pytestmark = pytest.mark.usefixtures("one_thread")

THREAT = "patch:0.04@camera"
SUITE = """\
version: 1
name: fusion-test
seed: 3
shard_size: 2
model: {checkpoint: zoo:fusion-query}
data: {source: fusion-world, n: 4, options: {seed: 7}}
checks:
  - {id: clean, expect: {clean_accuracy: ">= 0.5"}}
  - id: object
    attack: fusion_patch
    params: {strategy: object, steps: 3, eot_samples: 1, lr: 0.05}
    threat: "patch:0.04@camera"
    expect: {}
"""


@pytest.fixture(scope="module")
def query() -> rbl.Model:
    return rbl.load_model("zoo:fusion-query")


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fusion") / "fusion.yaml"
    path.write_text(SUITE)
    return path


@pytest.fixture(scope="module")
def local_report(suite_path: Path, query: rbl.Model) -> rbl.Report:
    return rbl.run_suite(suite_path, query)


def _direct(query: rbl.Model) -> dict[str, float]:
    """The suite's check computed by hand: the attack on each shard with its cell's generator,
    scored on all scenes at once as benchmarks/fusion_patch.py scores them."""
    x, y = load_inputs("fusion-world", n=4, seed=7)
    assert isinstance(x, dict)
    attack = rbl.create_attack("fusion_patch", strategy="object", steps=3, eot_samples=1, lr=0.05)
    adv, control = [], []
    for shard in (0, 1):
        part = {k: v[2 * shard : 2 * shard + 2] for k, v in x.items()}
        gen = torch.Generator().manual_seed(cell_seed(3, "object", shard))
        r = attack(query, part, y[:2], THREAT, generator=gen)
        adv.append(r.x_adv["camera"])  # type: ignore[index]
        control.append(r.metrics["random_patch_camera"])
    scenes = scenes_of(x["boxes"])
    out = {}
    for state, cam in (
        ("before", x["camera"]),
        ("after", torch.cat(adv)),
        ("control", torch.cat(control)),
    ):
        with torch.no_grad():
            maps = query.net.score_map({**x, "camera": cam})
        tgt = target_score(maps, x["target_xy"])
        out[f"toy_ap_{state}"] = toy_ap(maps, scenes)
        out[f"target_score_{state}"] = float(tgt.mean())
        out[f"detection_rate_{state}"] = float((tgt >= 0.3).float().mean())
        out[f"mean_score_{state}"] = float(mean_detection_score(maps).mean())
    return out


def test_suite_fusion_values_match_a_direct_computation(
    local_report: rbl.Report, query: rbl.Model
) -> None:
    check = next(r for r in local_report.results if r.id == "object")
    assert len(check.detail["cells"]) == 2  # two shards of mapping inputs
    direct = _direct(query)
    for key, value in direct.items():
        assert check.values[key] == pytest.approx(value, abs=1e-6), key
    assert check.values["toy_ap_drop"] == pytest.approx(
        direct["toy_ap_before"] - direct["toy_ap_after"], abs=1e-9
    )
    clean = next(r for r in local_report.results if r.id == "clean")
    assert clean.values["clean_accuracy"] == check.values["detection_rate_before"]
    assert check.detail["fusion_examples"]["k"] == 2


def test_process_executor_and_store_carry_mapping_inputs(
    suite_path: Path, query: rbl.Model, local_report: rbl.Report, tmp_path: Path
) -> None:
    db = tmp_path / "r.sqlite"
    first = rbl.run_suite(suite_path, query, executor="process", workers=1, db=db)
    again = rbl.run_suite(suite_path, query, db=db)
    assert again.env["cells_resumed"] == again.env["cells"] == 4
    assert [r.values for r in again.results] == [r.values for r in first.results]
    for got, want in zip(first.results, local_report.results):  # workers run 2 torch threads:
        assert got.values == pytest.approx(want.values, rel=1e-6, abs=1e-7)  # float32 rounding
    other = rbl.run_suite(suite_path, query, db=db, n=2)  # other scenes: another run key
    assert other.env["cells_resumed"] == 0


def test_builtin_fusion_suite_and_quick_parameters() -> None:
    assert "fusion" in builtin_names()
    suite = load_suite("builtin:fusion")
    assert suite.data.source == "fusion-world" and dict(suite.data.options) == {"seed": 7}
    assert {c.component for c in suite.checks} == {None, "fusion", "fusion_patch"}
    assert all(c.threat.name == THREAT for c in suite.checks if c.threat is not None)
    assert rbl.create_attack("fusion").quick_params == {"heatmap_steps": 60, "steps": 60}


def test_two_stage_attack_follows_its_rule(query: rbl.Model) -> None:
    x, y = load_inputs("fusion-world", n=2, seed=7)
    kw = {"heatmap_steps": 4, "steps": 2, "eot_samples": 1}
    to_object = rbl.create_attack("fusion", object_lift=0.0, **kw)(query, x, y, THREAT, seed=1)
    to_scene = rbl.create_attack("fusion", object_lift=1e6, **kw)(query, x, y, THREAT, seed=1)
    assert to_object.metrics["strategy"] == "object" and to_scene.metrics["strategy"] == "scene"
    assert to_object.metrics["heatmap"].shape == (2, 48, 96)
    lift = to_object.metrics["heatmap_object_lift_rule"]
    assert lift == to_scene.metrics["heatmap_object_lift_rule"] and lift > 1.0
    # the object patch is the small rear-face one, the scene patch the larger ground one
    assert to_object.metrics["patch_area_fraction"] < to_scene.metrics["patch_area_fraction"]
    no_boxes = {k: v for k, v in x.items() if k != "boxes"}  # the heatmap's concentration rule
    by_mass = rbl.create_attack("fusion", concentration=0.0, **kw)(query, no_boxes, y, THREAT)
    assert by_mass.metrics["strategy"] == "object"
    assert "heatmap_object_lift_rule" not in by_mass.metrics
    with pytest.raises(rbl.RobustbenchLiteError, match="strategy"):
        rbl.create_attack("fusion", strategy="road")(query, x, y, THREAT)


def test_cli_attack_reports_fusion_metrics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "a.json"
    argv = ["attack", "fusion_patch", "--model", "zoo:fusion-query", "--threat", THREAT]
    argv += ["--n", "2", "--param", "steps=2", "--param", "eot_samples=1"]
    assert main([*argv, "--report", str(report)]) == 0
    values = json.loads(report.read_text())["checks"][0]["values"]
    for key in ("target_score_before", "target_score_after", "toy_ap_drop", "toy_ap_control"):
        assert key in values, key
    assert values["detection_rate_before"] == values["clean_accuracy"]
    capsys.readouterr()
    assert (
        main(["attack", "fusion_patch", "--model", "zoo:fusion-query", "--threat", "patch:0.04"])
        == 2
    )
    assert "@camera" in capsys.readouterr().err


def test_html_report_shows_the_patched_cameras(local_report: rbl.Report) -> None:
    from robustbench_lite.report.html import to_html

    page = to_html(local_report)
    assert "Camera patches on the fusion detector" in page
    assert "alt='camera patches of object'" in page
