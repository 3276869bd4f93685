"""The sweep rule of report/scaling.py: three or more distinct eps make a sweep, two do not."""

from __future__ import annotations

from robustbench_lite.report.model import CheckResult, Report
from robustbench_lite.report.scaling import sweeps

N = 200


def _sda(eps: float, broken: int) -> CheckResult:
    """An SDA check on N samples at l0 ``eps`` that broke ``broken`` of them."""
    return CheckResult(
        id=f"sda@{eps:g}",
        kind="attack",
        component="sda",
        threat=f"l0:{eps:g}",
        passed=True,
        values={
            "clean_accuracy": 1.0,
            "robust_accuracy": 1 - broken / N,
            "success_rate": broken / N,
        },
        detail={"n": N, "eps": eps, "norm": "l0", "goal": "untargeted", "params": {"k_init": 4}},
    )


def _scaling_lines(results: list[CheckResult]) -> list[str]:
    table = Report(suite="s", model="m", results=tuple(results)).render("table")
    return [line for line in table.splitlines() if line.startswith("scaling ")]


def test_two_eps_are_no_sweep() -> None:
    """builtin:snn's two SDA checks (l0:20 and l0:4624): no scaling line, no scaling section."""
    two = [_sda(20, 30), _sda(4624, 190)]
    assert sweeps(two) == []
    assert _scaling_lines(two) == []
    assert "scaling" not in Report(suite="s", model="m", results=tuple(two)).to_dict()
    assert sweeps([*two, _sda(20, 31)]) == []  # a repeated eps adds no point


def test_three_eps_are_a_sweep() -> None:
    three = [_sda(20, 10), _sda(4624, 55), _sda(200, 25)]
    (found,) = sweeps(three)
    assert found.eps == (20, 200, 4624)  # sorted by eps
    assert found.fit is not None  # 10, 25, 55 of 200 broken: all in the fit window
    (line,) = _scaling_lines(three)
    assert line.startswith("scaling sda (l0), 3 eps 20..4624: ")
