"""``robustbench-lite train`` writes a checkpoint that every front door loads, with its metadata;
the zoo's ``digits-cnn-at`` is the example recipe, trained by the same code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.cli.train import read_recipe
from robustbench_lite.training.recipe import parse_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

ARCH = "robustbench_lite.zoo.digits:digits_mlp"
RECIPE = f"""\
arch: {ARCH}
data: digits
seed: 3
epochs: 5
optimizer: {{name: sgd, lr: 0.1, momentum: 0.9}}
schedule: {{name: accelat, window: 1, cooldown: 0}}
trainer: {{name: pgd-at, threat: "linf:0.1", steps: 2}}
validation: {{fraction: 0.1, steps: 2}}
"""
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recipes"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("train")
    (folder / "r.yaml").write_text(RECIPE)
    assert main(["train", str(folder / "r.yaml"), "--out", str(folder / "m.pt")]) == 0
    return folder / "r.yaml", folder / "m.pt"


def test_checkpoint_is_a_plain_state_dict_with_its_metadata(trained: tuple[Path, Path]) -> None:
    recipe_path, out = trained
    saved = torch.load(out, map_location="cpu", weights_only=True)
    meta = saved["rbl_meta"]
    recipe = parse_recipe(read_recipe(str(recipe_path))[0], "r.yaml")
    assert meta["bounds"] == [0.0, 1.0] and meta["input_shape"] == [1, 8, 8]
    assert meta["num_classes"] == 10 and meta["dataset"] == "digits"
    assert meta["default_threats"][0] == "linf:0.1"
    training = meta["training"]
    assert training["recipe_hash"] == recipe.hash and training["arch"] == ARCH
    assert (training["trainer"], training["threat"], training["schedule"]) == (
        "pgd-at",
        "linf:0.1",
        "accelat",
    )
    assert training["recipe"] == recipe.canonical()
    assert 0.0 <= training["metrics"]["pgd20_accuracy"] <= training["metrics"]["clean_accuracy"]


def test_every_front_door_loads_it(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, out = trained
    model = rbl.load_model(str(out), arch=ARCH)
    assert (model.bounds, model.input_shape, model.num_classes) == ((0.0, 1.0), (1, 8, 8), 10)
    assert model.default_threats[0] == "linf:0.1"
    assert model.meta["training"]["trainer"] == "pgd-at"
    assert model.meta["data"]["source"] == "digits"
    saved = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, saved[key])
    x, y = rbl.load_data(model, split="test", n=30)
    assert float((model.logits(x).argmax(1) == y).float().mean()) > 0.6
    capsys.readouterr()
    assert main(["attack", "pgd", "--model", str(out), "--arch", ARCH, "--threat", "linf:0.1",
                 "--n", "20"]) == 0  # fmt: skip
    assert "pgd-linf:0.1" in capsys.readouterr().out
    report = tmp_path / "r.json"
    assert main(["evaluate", str(out), "--arch", ARCH, "--quick", "--no-db", "--n", "20",
                 "--report", str(report)]) == 0  # fmt: skip
    assert report.is_file() and "linf:0.1" in report.read_text()


def test_same_recipe_same_weights_and_a_progress_bar(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe_path, first = trained
    again = tmp_path / "again.pt"
    assert main(["train", str(recipe_path), "--out", str(again)]) == 0
    captured = capsys.readouterr()
    assert "5/5" in captured.err and "pgd-at/accelat" in captured.err  # one tick per epoch
    assert f"--arch {ARCH}" in captured.out and "wrote" in captured.out
    a = torch.load(first, weights_only=True)["state_dict"]
    b = torch.load(again, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_zoo_model_is_the_example_recipe() -> None:
    from robustbench_lite.zoo import zoo_entry

    example = parse_recipe(read_recipe(str(EXAMPLES / "digits-cnn-pgd-at.yaml"))[0], "example")
    entry = zoo_entry("digits-cnn-at")
    assert dict(entry.recipe) == example.canonical()
    assert entry.recipe_hash == example.hash


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_recipes_are_valid(name: str) -> None:
    recipe = parse_recipe(read_recipe(str(EXAMPLES / name))[0], name)
    assert recipe.build_trainer() is not None and recipe.build_schedule() is not None
