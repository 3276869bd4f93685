"""Robustness tests written in Python with the `robustness` fixture of robustbench_lite."""

from pathlib import Path

import pytest

import robustbench_lite as rbl

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def model() -> rbl.Model:
    return rbl.load_model(
        HERE / "checkpoints" / "digits_mlp.pt",
        arch="mynet:DigitsMLP",
        input_shape=(1, 8, 8),
        bounds=(0.0, 1.0),  # the input domain is never guessed: say it (or data="digits")
        num_classes=10,
    )


@pytest.fixture(scope="session")
def digits() -> tuple:
    return rbl.load_data("digits", split="test", n=100)


@pytest.mark.robustness(seed=0, budget_s=120)
def test_pgd_linf(robustness, model, digits) -> None:
    r = robustness.attack("pgd", model, digits, threat="linf:0.03", steps=10)
    assert r.clean_accuracy >= 0.9
    assert r.robust_accuracy >= 0.8


@pytest.mark.robustness(seed=0, n=50)
def test_larger_budget_breaks_more(robustness, model, digits) -> None:
    small = robustness.attack("pgd", model, digits, threat="linf:0.03", steps=10)
    large = robustness.attack("pgd", model, digits, threat="linf:0.1", steps=10)
    assert large.robust_accuracy <= small.robust_accuracy
