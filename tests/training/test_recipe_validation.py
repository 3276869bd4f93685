"""A bad recipe is one clear line naming the file, line, key and fix; the CLI exits 2 and
writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import RecipeError
from robustbench_lite.suite.nodes import parse_yaml
from robustbench_lite.training.recipe import parse_recipe

GOOD = """\
arch: robustbench_lite.zoo.digits:digits_mlp
data: digits
epochs: 2
optimizer: {name: adam, lr: 0.01}
schedule: one-cycle
trainer: {name: pgd-at, threat: "linf:0.1", steps: 2}
"""

CASES = [
    # (what to change: old -> new, message, line)
    ("epochs: 2\n", "", "missing required key 'epochs'", 1),
    ("epochs: 2", "epoch: 2", "epoch: unknown key; did you mean epochs", 3),
    ("epochs: 2", "epochs: ten", "epochs: expected a whole number in [1, 10000], got str 'ten'", 3),
    ("epochs: 2", "epochs: 0", "epochs: expected a whole number", 3),
    ("name: pgd-at", "name: pgd_at", "unknown trainer 'pgd_at'; did you mean pgd-at", 6),
    ("steps: 2", "steps: 0", "trainer.steps: must be >= 1, not 0", 6),
    ("steps: 2", "stepz: 2", "trainer.stepz: unknown parameter of pgd-at; did you mean steps", 6),
    ('"linf:0.1"', '"l0:3"', "trainer.threat: pgd-at trains against an untargeted linf or l2", 6),
    ('"linf:0.1"', '"linf:-1"', "trainer.threat: ", 6),
    ("digits_mlp", "digits_mlp()", "arch: write MODULE:ATTR", 1),
    ("robustbench_lite.zoo.digits:", "", "arch: write MODULE:ATTR", 1),
    ("data: digits", "data: digitz", "data: unknown dataset 'digitz'; did you mean digits", 2),
    ("lr: 0.01", "lr: .nan", "optimizer.lr: expected a finite number", 4),
    ("lr: 0.01", "lr: -1", "optimizer.lr: must be > 0", 4),
    (
        "{name: adam,",
        "{name: adam, momentum: 0.9,",
        "optimizer.momentum: adam takes no momentum",
        4,
    ),
    (
        "schedule: one-cycle",
        "schedule: {name: accelat, factor: 2}",
        "schedule.factor: must be in (0, 1)",
        5,
    ),
    ("schedule: one-cycle", "schedule: cosine", "unknown schedule 'cosine'", 5),
    (
        "schedule: one-cycle",
        "schedule: accelat\nvalidation: {fraction: 0}",
        "validation.fraction: the accelat schedule follows validation accuracy",
        6,
    ),
]


def _recipe(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "message", "line"), CASES)
def test_bad_recipe_names_line_key_and_fix(old: str, new: str, message: str, line: int) -> None:
    text = _recipe(old, new)
    with pytest.raises(RecipeError) as info:
        parse_recipe(parse_yaml(text, "r.yaml"), "r.yaml")
    assert str(info.value).startswith(f"r.yaml:{line} "), str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_good_recipe_fills_defaults_and_hashes_what_matters() -> None:
    recipe = parse_recipe(parse_yaml(GOOD, "r.yaml"), "r.yaml")
    assert (recipe.seed, recipe.batch_size, recipe.validation_fraction) == (0, 64, 0.0)
    again = parse_recipe(parse_yaml(GOOD + "\n# a comment\n", "other.yaml"), "other.yaml")
    assert again.hash == recipe.hash  # the file's name and layout do not change the weights
    seeded = parse_recipe(parse_yaml(GOOD + "seed: 1\n", "r.yaml"), "r.yaml")
    assert seeded.hash != recipe.hash
    accel = parse_recipe(parse_yaml(_recipe("one-cycle", "accelat"), "r.yaml"), "r.yaml")
    assert accel.validation_fraction == 0.15  # the schedule needs held-out accuracy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("epochs: 2", "epochs: [2"), "malformed YAML"),
        ("- just\n- a list\n", "expected a recipe mapping"),
        ("a: &x [1]\nb: *y\n", "r.yaml"),
        (_recipe("steps: 2", "steps: 0"), "trainer.steps: must be >= 1"),
    ],
)
def test_cli_refuses_bad_recipes_with_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    out = tmp_path / "model.pt"
    assert main(["train", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustbench-lite: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_cli_refuses_a_missing_recipe_and_a_folder_as_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "m.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text(GOOD)
    assert main(["train", str(recipe), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "not a regular file" in err


def test_cli_refuses_hostile_recipes_before_reading_them_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
    )
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs)
    out = tmp_path / "m.pt"
    assert main(["train", str(bomb), "--out", str(out)]) == 2
    assert "refused" in capsys.readouterr().err
    monkeypatch.setenv("RBL_MAX_SUITE_BYTES", "100")
    big = tmp_path / "big.yaml"
    big.write_text(GOOD + "#" * 200 + "\n")
    assert main(["train", str(big), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "over 100 bytes" in err and "RBL_MAX_SUITE_BYTES" in err
    assert not out.exists()


def test_cli_names_an_arch_that_does_not_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(_recipe("robustbench_lite.zoo.digits:digits_mlp", "no_such_module:Net"))
    out = tmp_path / "m.pt"
    assert main(["train", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "arch 'no_such_module:Net': cannot import no_such_module" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
