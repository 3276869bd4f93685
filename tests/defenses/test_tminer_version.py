"""T-Miner's honest bookkeeping: the verdict cache key follows the code, and the calibration
statistic is the scan's statistic (same procedure, same random stream for a seed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from robustbench_lite.defenses import _tminer_version as version
from text_helpers import bag_of_words

import robustbench_lite as rbl


def test_the_code_hash_covers_every_detector_source_file(tmp_path: Path) -> None:
    files = version.source_files()
    names = {p.name for p in files}
    assert {"tminer.py", "_tminer_search.py", "_tminer_version.py"} <= names
    for p in files:
        shutil.copy(p, tmp_path / p.name)
    copies = version.source_files(tmp_path)
    assert version.code_hash(copies) == version.code_hash()
    search = tmp_path / "_tminer_search.py"
    search.write_text(search.read_text() + "\n# one more line\n")
    assert version.code_hash(copies) != version.code_hash()


def test_the_cache_key_changes_with_the_code_and_the_settings() -> None:
    det = rbl.create_detector("tminer")
    key = version.cache_key(det, "aaaaaaaaaaaa")
    assert key == version.cache_key(rbl.create_detector("tminer"), "aaaaaaaaaaaa")
    assert key != version.cache_key(det, "bbbbbbbbbbbb")  # same settings, other code
    assert key != version.cache_key(rbl.create_detector("tminer", seed=1), "aaaaaaaaaaaa")
    assert version.cache_key(det) == version.cache_key(det, version.code_hash())


@pytest.mark.parametrize("trigger_weight", [None, 30.0])
def test_calibration_and_scan_compute_the_same_statistic(
    trigger_weight: float | None, one_thread: None
) -> None:
    det = rbl.create_detector("tminer", seed=3)
    model = bag_of_words(trigger_weight)
    calibration = det.dominance(model)
    tested = [v["dominance"] for d in calibration.values() for v in d.values() if v["tested"]]
    scan = det.scan(model)
    # the scan's statistic is the calibration's, exactly, whatever the scan drew before
    assert scan.evidence["dominance_max"] == max(tested, default=None)
    assert scan.score == (max(tested) if tested else 0.0)
    assert scan.flagged == (scan.score > det.dominance_threshold)
    if trigger_weight is None:
        return
    # and it does not depend on the paper's generator having been trained first
    with_paper = rbl.create_detector(
        "tminer", seed=3, paper_identifier=True, n_train=100, joint_epochs=1
    ).scan(model)
    assert with_paper.evidence["dominance_max"] == scan.evidence["dominance_max"]
