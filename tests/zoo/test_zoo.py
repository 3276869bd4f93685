"""The embedded digits zoo: accuracy, adversarial training, determinism, caching by recipe hash."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite import zoo
from robustbench_lite.training.loop import accuracy

DIGITS = ("digits-mlp", "digits-cnn", "digits-cnn-at")


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBL_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", DIGITS)
def test_digits_models_accuracy_and_recorded_metadata(name: str) -> None:
    model = rbl.load_model(f"zoo:{name}")
    x, y = rbl.load_data("digits", split="test")
    acc = accuracy(model.net, x, y)
    assert acc >= (0.97 if name != "digits-mlp" else 0.95)
    assert model.meta["clean_accuracy"] == pytest.approx(acc, abs=1e-6)
    assert model.meta["recipe_hash"] == zoo.zoo_entry(name).recipe_hash
    assert model.meta["train_time_s"] > 0  # timing claims live in benchmarks/zoo_and_evaluate.py
    assert (model.input_shape, model.num_classes, model.bounds) == ((1, 8, 8), 10, (0.0, 1.0))
    assert model.default_threats and all(rbl.ThreatModel.parse(t) for t in model.default_threats)
    info = zoo.cached_info(name)
    assert info is not None and info["clean_accuracy"] == model.meta["clean_accuracy"]


def test_adversarial_training_buys_robustness(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits
    pgd = rbl.create_attack("pgd", steps=20)
    plain = pgd(rbl.load_model("zoo:digits-cnn"), x, y, "linf:0.1")
    robust_model = rbl.load_model("zoo:digits-cnn-at")
    robust = pgd(robust_model, x, y, "linf:0.1")
    assert robust_model.meta["recipe"]["trainer"] == {
        "name": "pgd-at",
        "threat": "linf:0.1",
        "steps": 10,
    }
    assert robust.robust_accuracy >= 0.7
    assert robust.robust_accuracy >= plain.robust_accuracy + 0.2


def test_training_is_deterministic_and_cached_by_recipe_hash(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = zoo.load_zoo_model("digits-mlp")
    weights = fresh_cache / "zoo" / f"digits-mlp-{zoo.zoo_entry('digits-mlp').recipe_hash}.pt"
    assert weights.is_file()
    stamp = weights.stat().st_mtime_ns
    second = zoo.load_zoo_model("digits-mlp", retrain=True)  # same recipe -> same weights
    for (k, a), (_, b) in zip(first.net.state_dict().items(), second.net.state_dict().items()):
        assert torch.equal(a, b), f"retraining changed {k}"

    def no_training(net: Any) -> dict[str, float]:
        raise AssertionError("a cached model was retrained")

    entry = zoo.zoo_entry("digits-mlp")
    monkeypatch.setitem(zoo.ZOO._items, "digits-mlp", dataclasses.replace(entry, train=no_training))
    stamp = weights.stat().st_mtime_ns
    third = zoo.load_zoo_model("digits-mlp")  # from the cache: no training, file untouched
    assert weights.stat().st_mtime_ns == stamp
    assert third.meta["train_time_s"] == second.meta["train_time_s"]
    assert torch.equal(third.net.state_dict()["1.weight"], first.net.state_dict()["1.weight"])


def test_recipe_change_changes_the_cache_key() -> None:
    entry = zoo.zoo_entry("digits-cnn")
    assert (
        entry.recipe_hash == zoo.zoo_entry("digits-cnn").recipe_hash
        and len(entry.recipe_hash) == 12
    )
    other = dataclasses.replace(
        entry, recipe={**entry.recipe, "epochs": entry.recipe["epochs"] + 1}
    )
    assert other.recipe_hash != entry.recipe_hash
    assert zoo.zoo_entry("digits-cnn-at").recipe_hash != entry.recipe_hash


def test_corrupt_cache_is_retrained(fresh_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    entry = zoo.zoo_entry("digits-mlp")
    folder = fresh_cache / "zoo"
    folder.mkdir()
    (folder / f"digits-mlp-{entry.recipe_hash}.pt").write_bytes(b"garbage")
    (folder / f"digits-mlp-{entry.recipe_hash}.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="robustbench_lite.zoo"):
        model = zoo.load_zoo_model("digits-mlp")
    assert "unreadable" in caplog.text
    assert model.meta["clean_accuracy"] >= 0.95


def test_loading_leaves_the_global_random_stream_alone() -> None:
    zoo.load_zoo_model("digits-cnn")
    state = torch.get_rng_state()
    zoo.load_zoo_model("digits-cnn")
    assert torch.equal(state, torch.get_rng_state())


def test_unknown_zoo_name_suggests() -> None:
    assert set(DIGITS) <= set(zoo.zoo_names())
    with pytest.raises(
        rbl.RegistryError, match="unknown zoo model 'digits-cnn-adv'; did you mean digits-cnn-at"
    ):
        zoo.zoo_entry("digits-cnn-adv")
