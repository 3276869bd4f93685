"""Adaptive-attack texts (BPDA/EOT reason, masking, judging) are report values in every format."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from robustbench_lite.report.adaptive_values import MAX_TEXT, adaptive_lines, text_values
from robustbench_lite.report.model import CheckResult
from robustbench_lite.report.values import numeric
from robustbench_lite.suite.kinds.attack import merge_metric
from robustbench_lite.suite.runner import run_suite

SUITE = """\
version: 1
name: adaptive
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 12}
shard_size: 6
defenses:
  bits4: {use: bit_depth, bits: 4}
  pad: {use: resize_pad, draws: 4}
checks:
  - {id: std-bits4, attack: standard, params: {scale: 0.05}, defense: bits4, threat: "linf:0.1", expect: {}}
  - {id: std-pad, attack: standard, params: {scale: 0.05, eot_samples: 2}, defense: pad, threat: "linf:0.1", expect: {}}
  - {id: std-plain, attack: standard, params: {scale: 0.05}, threat: "linf:0.1", expect: {}}
"""


def test_standard_on_a_defended_model_shows_its_adaptive_texts_in_every_format(
    tmp_path: Path,
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE))
    report = run_suite(path, db=None)
    checks = {r.id: r for r in report.results}
    defended, plain = checks["std-bits4"], checks["std-plain"]
    assert len(defended.detail["cells"]) == 2  # two shards merged to one text each
    values = defended.values
    assert values["adaptive"] == "BPDA"
    assert values["adaptive_text"].startswith(
        "BPDA used because bit_depth(4) is not differentiable"
    )
    # bit_depth's real gradient is zero everywhere: masking flagged, in words too
    assert values["masking"] is True and values["zero_gradient_fraction"] == 1.0
    assert values["masking_text"].startswith("gradient masking suspected")
    assert "judging" not in values  # bit_depth is deterministic: one forward pass
    for cell in defended.detail.get("metrics_per_cell", []):  # values now, not cell detail
        assert not {"adaptive", "adaptive_text", "masking_text"} & set(cell)
    assert not {"adaptive", "adaptive_text", "masking_text"} & set(plain.values)
    padded = checks["std-pad"].values  # random: EOT, judged over the model's 4 passes
    assert padded["adaptive"] == "EOT" and "resize_pad(0.8) is random" in padded["adaptive_text"]
    assert "at least 2 of 4 forward passes" in padded["judging"]

    doc = json.loads(report.render("json"))
    json_values = {c["id"]: c["values"] for c in doc["checks"]}["std-bits4"]
    assert json_values["adaptive_text"] == values["adaptive_text"]
    table = report.render("table")
    assert f"std-bits4: {values['adaptive_text']}" in table
    assert f"std-bits4: {values['masking_text']}" in table
    assert f"std-pad: {padded['judging']}" in table
    assert "std-plain:" not in table
    md = report.render("md")
    assert "## Adaptive attacks" in md
    assert "- std-bits4: BPDA used because bit_depth(4) is not differentiable" in md
    html = report.render("html")
    assert "More values" in html and "adaptive_text = BPDA used because bit_depth(4)" in html


def test_texts_merge_to_the_distinct_ones_and_long_texts_stay_detail() -> None:
    text = "EOT used because resize_pad(0.8) is random: gradients averaged over 10 draws"
    assert merge_metric("adaptive_text", [(text, 6), (text, 4)]) == text
    metrics = {"adaptive_text": text, "judging": "x" * (MAX_TEXT + 1), "note": "free text"}
    assert text_values(metrics) == {"adaptive_text": text}
    assert numeric(metrics | {"masking": True}) == {"adaptive_text": text, "masking": True}


def test_adaptive_lines_follow_the_values_of_each_check() -> None:
    judging = "randomized model (resize_pad(0.8)): ... at least 5 of 10 forward passes"
    results = [
        CheckResult(
            "a",
            "attack",
            "standard",
            "linf:0.1",
            True,
            values={"adaptive": "EOT", "judging": judging},
        ),
        CheckResult("b", "attack", "pgd", "linf:0.1", True, values={"robust_accuracy": 0.5}),
    ]
    assert adaptive_lines(results) == [f"a: {judging}"]


@pytest.mark.parametrize("value", [1.0, None, True])
def test_non_text_values_give_no_line(value: object) -> None:
    result = CheckResult("c", "attack", "pgd", None, True, values={"adaptive_text": value})
    assert adaptive_lines([result]) == []
