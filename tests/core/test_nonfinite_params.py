"""Issue 21: NaN and inf are refused for every float hyperparameter, in one place (the registry)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.registry import REGISTRIES, Registry

_FLOAT = re.compile(r"(?<![\w.])float(?!\w)")
BAD = (math.nan, math.inf, -math.inf)


def _float_params() -> list[tuple[str, str, str, str]]:
    """(registry, component, parameter, declared type) of every float-typed parameter."""
    return [
        (kind, name, p.name, p.type)
        for kind, registry in REGISTRIES.items()
        for name in registry.names()
        for p in registry.params(name)
        if _FLOAT.search(p.type)
    ]


def _bad_value(declared: str, bad: float, default: Any) -> Any:
    """``bad`` as the parameter takes it: a number, or inside a tuple of numbers."""
    if declared.startswith("tuple"):
        items = list(default) if isinstance(default, tuple) and default else [0.5, 1.0]
        items[0] = bad
        return tuple(items)
    return bad


FLOAT_PARAMS = _float_params()


def test_every_kind_of_component_has_float_parameters_to_check() -> None:
    kinds = {kind for kind, *_ in FLOAT_PARAMS}
    assert {"attacks", "verifiers", "detectors"} <= kinds
    assert len({(kind, name) for kind, name, *_ in FLOAT_PARAMS}) >= 15  # the 15 of the issue


@pytest.mark.parametrize(("kind", "name", "param", "declared"), FLOAT_PARAMS)
def test_nan_and_inf_are_refused_by_create(kind: str, name: str, param: str, declared: str) -> None:
    registry: Registry[Any] = REGISTRIES[kind]
    default = next(p.default for p in registry.params(name) if p.name == param)
    for bad in BAD:
        value = _bad_value(declared, bad, default)
        with pytest.raises(ParameterError) as info:
            registry.create(name, **{param: value})
        assert info.value.param == param
        assert "is not a finite number" in str(info.value) and "\n" not in str(info.value)


def test_the_message_names_the_value_and_the_fix() -> None:
    with pytest.raises(ParameterError) as info:
        rbl.create_attack("pgd", step_size=math.nan)
    assert str(info.value) == "step_size: nan is not a finite number; leave it out for the default"
    with pytest.raises(ParameterError) as info:
        rbl.create_attack("square", p_init=math.inf)
    assert str(info.value) == "p_init: inf is not a finite number; e.g. p_init=0.8"
    with pytest.raises(ParameterError) as info:
        rbl.create_attack("pgd", step_size=10**400)  # an int too large for any float
    assert "is not a finite number" in str(info.value) and len(str(info.value)) < 200


def test_finite_values_ints_bools_and_strings_are_unchanged() -> None:
    assert rbl.create_attack("pgd", step_size=0.01, steps=3).step_size == 0.01
    assert rbl.create_attack("pgd", step_size=1).step_size == 1  # an int is a fine float
    assert rbl.create_attack("pgd", random_start=False).random_start is False
    with pytest.raises(ParameterError, match="takes a whole number"):
        rbl.create_attack("pgd", steps=math.nan)


def test_a_nan_step_size_in_a_suite_is_exit_2_not_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "nan.yaml"
    suite.write_text(
        "version: 1\nname: nan\nmodel: {checkpoint: zoo:digits-mlp}\n"
        "data: {source: digits, n: 10}\nchecks:\n"
        '  - {id: pgd, attack: pgd, params: {step_size: .nan}, threat: "linf:0.1",'
        ' expect: {robust_accuracy: ">= 0"}}\n'
    )
    assert main(["run", str(suite), "--no-db", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "step_size: nan is not a finite number" in err, err
