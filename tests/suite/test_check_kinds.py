"""Check kinds: one object per kind owns its keys, metrics, cells and merge; a new kind plugs in."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.core.errors import SuiteError
from robustbench_lite.core.registry import DEFENSES, Registry, create_defense
from robustbench_lite.report.values import clean_values
from robustbench_lite.suite.kinds import CheckKind, all_kinds, check_kind
from robustbench_lite.suite.kinds.base import KINDS, CellPayload, flat, register_kind
from robustbench_lite.suite.runner import run_suite
from robustbench_lite.suite.schema import load_suite


def test_the_five_kinds_and_what_each_owns() -> None:
    kinds = {k.name: k for k in all_kinds()}
    assert list(kinds) == ["clean", "attack", "verify", "detect", "invert"]
    keys = [k.component_key for k in kinds.values()]
    assert keys == [None, "attack", "verify", "detect", "invert"]
    assert kinds["attack"].takes_threat and kinds["verify"].takes_threat
    assert not kinds["clean"].takes_threat and not kinds["detect"].takes_threat
    assert not kinds["invert"].takes_threat and not kinds["invert"].needs_data
    assert "unknown_fraction" in kinds["verify"].metrics and not kinds["detect"].sharded
    with pytest.raises(rbl.RegistryError, match="unknown check kind 'atack'.*did you mean attack"):
        check_kind("atack")


class DefendedCleanKind(CheckKind):
    """Test kind: clean accuracy of the model behind a registered defense."""

    name = "defended_clean"
    component_key = "defended"
    metrics = ("clean_accuracy",)
    example_expect = 'clean_accuracy: ">= 0.5"'

    def components(self) -> Registry[Any]:
        return DEFENSES

    def run_cell(self, ctx, check, cell, model, x, y):  # type: ignore[no-untyped-def]
        defended = create_defense(check.component, **check.param_dict).apply(model)
        return {"clean_correct": (defended.logits(x).argmax(1).cpu() == y).tolist()}

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        return clean_values(flat(cells, "clean_correct")), {}


@pytest.fixture
def defended_kind() -> Iterator[None]:
    register_kind(DefendedCleanKind)
    try:
        yield
    finally:
        KINDS._items.pop(DefendedCleanKind.name)


def test_a_new_kind_is_one_class_and_nothing_else(tmp_path: Path, defended_kind: None) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: kinds
            model: {checkpoint: zoo:digits-cnn}
            data: {source: digits, n: 24}
            shard_size: 10
            checks:
              - id: plain
                expect: {clean_accuracy: ">= 0.5"}
              - id: squeezed
                defended: bit_depth
                params: {bits: 2}
                expect: {clean_accuracy: ">= 0.5", success_rate: "< 1"}
            """
        )
    )
    with pytest.raises(SuiteError, match="does not produce 'success_rate'"):
        load_suite(path)
    path.write_text(path.read_text().replace(', success_rate: "< 1"', ""))
    report = run_suite(path, db=None)
    results = {r.id: r for r in report.results}
    squeezed = results["squeezed"]
    assert squeezed.kind == "defended_clean" and squeezed.component == "bit_depth"
    assert [c["stop"] - c["start"] for c in squeezed.detail["cells"]] == [10, 10, 4]
    x, y = rbl.load_data("digits", n=24)
    defended = create_defense("bit_depth", bits=2).apply(rbl.load_model("zoo:digits-cnn"))
    expected = float((defended.logits(x).argmax(1) == y).float().mean())
    assert squeezed.values["clean_accuracy"] == pytest.approx(expected)
    assert torch.isfinite(torch.tensor(results["plain"].values["clean_accuracy"]))
