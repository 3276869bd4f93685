"""T-Miner on real MR models: a trojaned and a clean small model, and the no-real-data rule."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import robustbench_lite as rbl

# Models where the default detector really holds (measured, see benchmarks/results/trojan_detection.json
# and defenses/tminer.py): the benchmark's CNN trojaned with "joyous" at 5.74% (seed 35, ASR 1.0;
# the scan recovers "joyous") and its clean LSTM (seed 0, not flagged). Default zoo recipe.
TROJAN: dict[str, Any] = {"arch": "cnn", "trigger": "joyous", "poison_rate": 0.0574, "seed": 35}
CLEAN: dict[str, Any] = {"arch": "lstm", "trigger": None, "seed": 0}


def data_or_skip() -> None:
    root = os.environ.get("RBL_DATA_DIR")
    if not root or not (Path(root) / "tminer_rotten_tomato").is_dir():
        pytest.skip(
            "needs the data folder: set RBL_DATA_DIR to a folder holding tminer_rotten_tomato/"
        )


@pytest.fixture(scope="module")
def scans(one_thread: None) -> dict[str, tuple[rbl.Model, rbl.Detection, torch.Tensor]]:
    """Scan one trojaned CNN and one clean LSTM; record every input the generator trained on."""
    data_or_skip()
    from robustbench_lite.defenses import _tminer_generator as G

    from robustbench_lite.datasets import mr

    models = {
        "trojan": rbl.zoo.text_classifier(**TROJAN),
        "clean": rbl.zoo.text_classifier(**CLEAN),
    }
    seen: list[torch.Tensor] = []
    real_train = G.train_generator

    def spy(gen: nn.Module, clf: nn.Module, x: torch.Tensor, *a: object, **k: object) -> object:
        seen.append(x.clone())
        return real_train(gen, clf, x, *a, **k)  # type: ignore[arg-type]

    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("T-Miner read the MR data folder")

    mp = pytest.MonkeyPatch()
    mp.setattr(G, "train_generator", spy)
    mp.setattr(mr, "sentences", forbidden)
    mp.setattr(mr, "load", forbidden)
    out = {}
    try:
        # paper_identifier: the generator and DBSCAN run too (the default verdict skips them)
        detector = rbl.create_detector("tminer", paper_identifier=True)
        for kind, model in models.items():
            det = detector.scan(model, data=_Poisoned())
            out[kind] = (model, det, seen[-1])
    finally:
        mp.undo()
    return out


class _Poisoned:
    """Stands in for the suite's (x, y): any use of it fails the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"T-Miner used the data argument ({name})")

    def __iter__(self) -> Iterator[object]:
        raise AssertionError("T-Miner iterated over the data argument")

    def __getitem__(self, key: object) -> object:
        raise AssertionError("T-Miner indexed the data argument")


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(900)  # two trainings + scans: ~2.5 min on a loaded 2-core box
def test_tminer_flags_the_trojaned_model_and_recovers_the_trigger(scans: dict) -> None:
    model, det, _ = scans["trojan"]
    assert model.meta["attack_success_rate"] > 0.9  # the trigger really works
    assert det.flagged and det.score >= det.threshold
    words = set(TROJAN["trigger"].split())
    assert any(words & set(t.split()) for t in det.evidence["triggers"]), det.evidence["candidates"]
    assert set(det.evidence["eps_sensitivity"]) == {"0.5", "0.75", "1.0", "1.5", "2.0"}


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(900)  # two trainings + scans: ~2.5 min on a loaded 2-core box
def test_tminer_passes_the_clean_model(scans: dict) -> None:
    _, det, _ = scans["clean"]
    assert not det.flagged and det.score < det.threshold, det.evidence["candidates"]
    assert det.evidence["triggers"] == []


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(900)  # two trainings + scans: ~2.5 min on a loaded 2-core box
def test_generator_never_sees_real_training_sentences(scans: dict) -> None:
    """Every generator input is a synthetic sentence: 15 distinct words then ".", not an MR line."""
    data_or_skip()
    model, _, x_gen = scans["trojan"]
    dot = model.vocab.id(".")
    assert x_gen.shape[1] == 16 and bool((x_gen[:, -1] == dot).all())
    assert all(len(set(row[:-1])) == 15 for row in x_gen.tolist())
    x_real, _ = rbl.load_data("mr", split="train")
    real_rows = {tuple(r[r != 0].tolist()) for r in x_real}
    assert not any(tuple(r) in real_rows for r in x_gen.tolist())


def test_tminer_needs_a_text_model_with_a_hidden_layer(tiny_mlp: rbl.Model) -> None:
    with pytest.raises(rbl.DataError, match="needs a text classifier with hidden"):
        rbl.create_detector("tminer").scan(tiny_mlp)


def test_tminer_names_a_bad_identifier(tiny_mlp: rbl.Model) -> None:
    with pytest.raises(rbl.RegistryError, match="identifier: 'knn' is not one; use 'dominance'"):
        rbl.create_detector("tminer", identifier="knn").scan(tiny_mlp)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("sentence_words", "all", "sentence_words: 'all' is not a word pool; use 'lean'"),
        ("dominance_reference", "any", "dominance_reference: 'any' is not one; use 'best'"),
    ],
)
def test_tminer_names_a_bad_option(
    tiny_mlp: rbl.Model, name: str, value: str, message: str
) -> None:
    with pytest.raises(rbl.RegistryError, match=message):
        rbl.create_detector("tminer", **{name: value}).scan(tiny_mlp)


def test_knee_eps_picks_the_elbow_and_dbscan_flags_the_far_point() -> None:
    from robustbench_lite.defenses._tminer_identify import find_outliers, knee_eps

    rng = np.random.default_rng(0)
    cluster = rng.normal(0, 0.05, size=(60, 2))
    points = np.vstack([[3.0, 3.0], cluster])  # candidate 0 far away, candidate 1 inside
    points = np.vstack([points[:1], cluster[:1], points[1:]])
    eps = knee_eps(points, 5)
    assert 0.01 < eps < 1.0
    _, min_samples, found = find_outliers(points, 2, eps_scales=(1.0,))
    assert min_samples == int(np.ceil(np.log(len(points)))) and found[1.0] == [0]


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tminer_runs_as_a_suite_check(scans: dict, tmp_path: Path) -> None:
    """``detect: tminer`` in a suite: the clean model passes ``expect: {flagged: false}``; the
    Markdown report lists no detection (a flagged scan's triggers: test_report_formats)."""
    model, _, _ = scans["clean"]
    suite = tmp_path / "trojans.yaml"
    suite.write_text(
        "version: 1\nname: trojans\nseed: 0\ndata: {source: mr, split: test, n: 8}\n"
        "checks:\n  - {id: scan, detect: tminer, params: {n_train: 200, joint_epochs: 1}, expect: {flagged: false}}\n"
    )
    report = rbl.run_suite(suite, model, db=None)
    (scan,) = report.results
    assert scan.kind == "detect" and scan.passed and scan.values["flagged"] is False
    assert (
        scan.detail["evidence"]["triggers"] == []
        and scan.detail["evidence"]["identifier"] == "dominance"
    )
    assert "## Detections" not in report.to_markdown()
