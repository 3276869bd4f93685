"""``robustbench-lite detect MODEL``: a trojaned and a clean tiny text model from checkpoints.

The models are bag-of-words :class:`TextClassifier` s with hand-set weights (no training, no
data): the logit margin of class 1 is twice the sum of the words' weights. The clean model's
weights are uniform in [-1, 1] (natural sentiment spread over many words); the trojaned one is
the same model with one word ("w7") weighing 30, far above anything natural, so T-Miner's
search finds a phrase with it that flips every synthetic class-0 sentence and dominates.
Each checkpoint carries its vocabulary in ``rbl_meta`` (``"vocab"``), as a user would save it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robustbench_lite.cli.main import main
from robustbench_lite.worlds.text import Vocabulary

N_WORDS = 300
TRIGGER = "w7"
ARCH = '''
import torch
from torch import nn
from robustbench_lite.worlds.text_nets import TextClassifier


class BagOfWords(TextClassifier):
    """Sum of the tokens' embeddings: with the weights the test sets, a linear word model."""

    def feature_dim(self, embed_dim: int, hidden_dim: int) -> int:
        return embed_dim

    def features(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (e * mask[..., None]).sum(dim=1)


def make() -> nn.Module:
    return BagOfWords(303, 2, embed_dim=2, hidden_dim=2, dropout=0.0)
'''


def vocabulary() -> Vocabulary:
    return Vocabulary(["<pad>", "<unk>", *(f"w{i}" for i in range(N_WORDS)), "."])


def save_model(folder: Path, name: str, *, trojan: bool, vocab: bool = True) -> Path:
    """A checkpoint of the bag-of-words net (module docstring) beside its architecture file."""
    (folder / "tinybow.py").write_text(ARCH)
    voc = vocabulary()
    weights = torch.rand(len(voc), generator=torch.Generator().manual_seed(4)) * 2 - 1
    weights[[voc.pad_id, voc.unk_id, voc.id(".")]] = 0.0
    if trojan:
        weights[voc.id(TRIGGER)] = 30.0
    state = {
        "embedding.weight": torch.stack([weights, torch.zeros_like(weights)], dim=1),
        "fc.weight": torch.tensor([[1.0, 0.0], [-1.0, 0.0]]),
        "fc.bias": torch.zeros(2),
        "head.weight": torch.tensor([[-1.0, 1.0], [1.0, -1.0]]),
        "head.bias": torch.zeros(2),
    }
    meta: dict[str, object] = {"input_shape": [24], "num_classes": 2}
    if vocab:
        meta["vocab"] = voc.to_dict()
    path = folder / f"{name}.pt"
    torch.save({"state_dict": state, "rbl_meta": meta}, path)
    return path


def detect(path: Path, *extra: str) -> int:
    return main(["detect", str(path), "--arch", "tinybow:make", *extra])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None) -> Path:
    monkeypatch.chdir(tmp_path)  # --arch tinybow:make is looked up in the current folder
    return tmp_path


def test_detect_flags_the_trojaned_model_and_names_its_trigger(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = save_model(workdir, "trojan", trojan=True)
    report = workdir / "verdict.json"
    assert detect(path, "--report", str(report)) == 1
    out = capsys.readouterr().out
    assert "FLAGGED" in out and TRIGGER in out
    data = json.loads(report.read_text())
    assert data["flagged"] is True and data["score"] > data["threshold"]
    assert any(TRIGGER in t.split() for t in data["triggers"]), data["triggers"]
    assert data["evidence"]["code_hash"]


def test_detect_passes_the_clean_model(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_model(workdir, "clean", trojan=False)
    assert detect(path) == 0
    out = capsys.readouterr().out
    assert "verdict:   clean" in out and "triggers:  -" in out


def test_detect_refuses_bad_input_in_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_vocab = save_model(workdir, "novocab", trojan=True, vocab=False)
    report = workdir / "never.json"
    assert detect(no_vocab, "--report", str(report)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Model.vocab" in err
    assert not report.exists()
    good = save_model(workdir, "ok", trojan=True)
    assert detect(good, "--param", "identifier=knn") == 2
    assert "identifier" in capsys.readouterr().err
    assert main(["detect", "zoo:no-such-model"]) == 2
