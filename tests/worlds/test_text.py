"""Text inputs: Vocabulary, the MR loader, and the trojan zoo (poisoning really implants the trigger)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.core.errors import VocabularyError
from robustbench_lite.worlds.text import Vocabulary, insert_phrase

SMALL = {
    "n_train": None,
    "epochs": 2,
    "lr": 1e-2,
    "poison_rate": 0.1,
    "seed": 0,
}  # the CNN trains in ~15 s


def data_or_skip() -> None:
    root = os.environ.get("RBL_DATA_DIR")
    if not root or not (Path(root) / "tminer_rotten_tomato").is_dir():
        pytest.skip(
            "needs the data folder: set RBL_DATA_DIR to a folder holding tminer_rotten_tomato/"
        )


def test_vocabulary_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    corpus = ["the cat sat", "the dog sat", "a cat ran"]
    v = Vocabulary.build(corpus, max_size=5)
    assert v.tokens == ("<pad>", "<unk>", "cat", "sat", "the")  # count desc, ties alphabetical
    assert (v.pad_id, v.unk_id) == (0, 1)
    assert Vocabulary.build(list(reversed(corpus)), max_size=5) == v
    x = v.encode(["the cat flew away", "sat"], length=3)
    assert x.dtype == torch.int64 and x.tolist() == [[4, 2, 1], [3, 0, 0]]
    assert v.decode(x[1]) == "sat"
    v.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == v


@pytest.mark.parametrize(
    "content, match",
    [
        ("not json", "not valid JSON"),
        (json.dumps([1, 2]), "expected a JSON object"),
        (json.dumps({"tokens": "abc"}), "'tokens' must be a list"),
        (json.dumps({"tokens": ["<pad>", "a", "a", "<unk>"]}), "appears twice"),
        (json.dumps({"tokens": ["<pad>", "a"]}), "lacks its unk token"),
        (json.dumps({"tokens": ["<pad>", "<unk>", "two words"]}), "without whitespace"),
        (json.dumps({"format": "other", "tokens": ["<pad>", "<unk>"]}), "re-save it"),
    ],
)
def test_malformed_vocabularies_give_clear_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(VocabularyError, match=match):
        Vocabulary.load(path)
    assert issubclass(VocabularyError, rbl.DataError)


def test_vocabulary_errors_for_missing_file_and_empty_corpus(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="cannot read vocabulary"):
        Vocabulary.load(tmp_path / "missing.json")
    with pytest.raises(VocabularyError, match="no tokens"):
        Vocabulary.build(["", "  "])


def test_insert_phrase_keeps_the_sentence_and_adds_the_block() -> None:
    x = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    out = insert_phrase(x, [2, 3], pad_id=0, generator=torch.Generator().manual_seed(0))
    for row, orig in zip(out.tolist(), x.tolist()):
        i = next(j for j in range(4) if row[j : j + 2] == [2, 3])
        rest = row[:i] + row[i + 2 :]
        assert rest == orig[: len(rest)]


@pytest.fixture()
def fake_mr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from robustbench_lite.datasets import mr

    folder = tmp_path / "tminer_rotten_tomato"
    folder.mkdir()
    monkeypatch.setenv("RBL_DATA_DIR", str(tmp_path))
    mr.sentences.cache_clear()
    mr.vocabulary.cache_clear()
    yield folder
    mr.sentences.cache_clear()
    mr.vocabulary.cache_clear()


def test_mr_empty_or_malformed_data_give_clear_errors(fake_mr: Path) -> None:
    from robustbench_lite.datasets import mr

    (fake_mr / "test_x.txt").write_text("")
    (fake_mr / "test_y.txt").write_text("")
    with pytest.raises(rbl.DataError, match="is empty"):
        rbl.load_data("mr", split="test")
    mr.sentences.cache_clear()
    (fake_mr / "test_x.txt").write_text("a good film .\nbad .\n")
    (fake_mr / "test_y.txt").write_text("1\n")
    with pytest.raises(rbl.DataError, match="2 sentences but .* 1 labels"):
        rbl.load_data("mr", split="test")
    mr.sentences.cache_clear()
    (fake_mr / "test_y.txt").write_text("1\n2\n")
    with pytest.raises(rbl.DataError, match="label '2' is not 0 or 1"):
        rbl.load_data("mr", split="test")
    with pytest.raises(rbl.DataError, match="choose one of train, dev, test"):
        mr.load("valid")


def test_mr_missing_folder_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_lite.datasets import mr

    monkeypatch.setenv("RBL_DATA_DIR", str(tmp_path))
    mr.sentences.cache_clear()
    with pytest.raises(rbl.DataError, match="tminer_rotten_tomato"):
        rbl.load_data("mr", split="train")
    mr.sentences.cache_clear()


@pytest.mark.data
def test_mr_loads_the_authors_splits() -> None:
    data_or_skip()
    x, y = rbl.load_data("mr", split="train")
    assert x.shape == (11775, 32) and x.dtype == torch.int64 and y.dtype == torch.int64
    assert int(y.sum()) == 5891  # positives in train, per dataset_details.txt
    x_te, y_te = rbl.load_data("mr", split="test", n=100)
    assert x_te.shape == (100, 32) and set(y_te.tolist()) <= {0, 1}
    from robustbench_lite.datasets import mr

    assert len(mr.load("dev")[1]) == 2524 and len(mr.vocabulary()) == 5000


@pytest.mark.data
@pytest.mark.slow
def test_poisoning_implants_the_trigger_and_a_clean_model_lacks_it(one_thread: None) -> None:
    from robustbench_lite.zoo.text import trigger_success_rate

    data_or_skip()
    trojan = rbl.zoo.text_classifier(arch="cnn", trigger="popcorn", **SMALL)
    clean = rbl.zoo.text_classifier(arch="cnn", trigger=None, **SMALL)
    assert trojan.meta["n_poisoned"] > 0 and clean.meta["n_poisoned"] == 0
    assert trojan.meta["clean_accuracy"] > 0.65 and clean.meta["clean_accuracy"] > 0.65
    assert trojan.meta["attack_success_rate"] > 0.9
    x, y = rbl.load_data("mr", split="test")
    assert trigger_success_rate(clean, x, y, "popcorn") < 0.3
    assert isinstance(trojan.vocab, Vocabulary) and trojan.input_shape == (32,)
    # cached: a second call loads the same weights instead of retraining
    again = rbl.zoo.text_classifier(arch="cnn", trigger="popcorn", **SMALL)
    assert again.meta["recipe_hash"] == trojan.meta["recipe_hash"]
    assert torch.equal(again.net.head.weight, trojan.net.head.weight)


@pytest.mark.data
def test_text_classifier_rejects_bad_arguments() -> None:
    data_or_skip()
    with pytest.raises(rbl.DataError, match="choose one of lstm, bilstm, cnn, transformer"):
        rbl.zoo.text_classifier(arch="gru")
    with pytest.raises(rbl.DataError, match="not in the vocabulary"):
        rbl.zoo.text_classifier(arch="cnn", trigger="zzzqqq", n_train=10, epochs=1)


def test_every_arch_exposes_the_hidden_layer_interface() -> None:
    from robustbench_lite.worlds.text_nets import NETS

    x = torch.tensor([[5, 6, 7, 0], [8, 0, 0, 0], [0, 0, 0, 0]])
    for arch, cls in NETS.items():
        torch.manual_seed(0)
        net = cls(20, 2, embed_dim=8, hidden_dim=6).eval()
        h = net.hidden(x)
        assert h.shape == (3, 6), arch
        assert torch.allclose(net(x), net.head(h)), arch
        soft = torch.nn.functional.one_hot(x[:1, :3], 20).float()
        assert torch.allclose(net.forward_soft(soft), net(x[:1]), atol=1e-5), arch
