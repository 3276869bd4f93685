"""T-Miner's honest bookkeeping: the verdict cache key follows the code, and the calibration
statistic is the scan's statistic (same procedure, same random stream for a seed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from robustbench_lite.defenses import _tminer_version as version

import robustbench_lite as rbl
from robustbench_lite.worlds.text import Vocabulary
from robustbench_lite.worlds.text_nets import TextClassifier


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


class _BagOfWords(TextClassifier):
    def feature_dim(self, embed_dim: int, hidden_dim: int) -> int:
        return embed_dim

    def features(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (e * mask[..., None]).sum(dim=1)


def bag_of_words(trigger_weight: float | None) -> rbl.Model:
    """Margin of class 1 = 2 x the sum of word weights (uniform in [-1, 1]); ``w7`` weighs
    ``trigger_weight`` when given (a planted trojan)."""
    vocab = Vocabulary(["<pad>", "<unk>", *(f"w{i}" for i in range(300)), "."])
    net = _BagOfWords(len(vocab), 2, embed_dim=2, hidden_dim=2, dropout=0.0)
    w = torch.rand(len(vocab), generator=torch.Generator().manual_seed(4)) * 2 - 1
    w[[vocab.pad_id, vocab.unk_id, vocab.id(".")]] = 0.0
    if trigger_weight is not None:
        w[vocab.id("w7")] = trigger_weight
    with torch.no_grad():
        net.embedding.weight.copy_(torch.stack([w, torch.zeros_like(w)], dim=1))
        net.fc.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        net.fc.bias.zero_()
        net.head.weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))
        net.head.bias.zero_()
    return rbl.Model(
        net=net.eval(),
        bounds=(0.0, len(vocab) - 1.0),
        input_shape=(24,),
        num_classes=2,
        vocab=vocab,
    )


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
