"""Suite YAML is untrusted: alias bombs, deep nesting and huge files are refused cheaply.

Each bomb goes through ``robustbench-lite validate FILE`` in a child process with a memory cap:
exit code 2, one line on stderr naming the limit, and a small peak memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from resource_helpers import PEAK_MB, run_cli

from robustbench_lite.core.errors import SuiteError
from robustbench_lite.suite.nodes import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_SUITE_BYTES_ENV,
    parse_yaml,
    short_repr,
)

HEAD = "version: 1\nname: bomb\n"
CHECK = '  - id: clean\n    expect: {clean_accuracy: ">= 0.5"}\n'


def _laughs(levels: int = 9) -> str:
    """A flow list holding a billion-laughs chain: its last anchor expands to 9^levels items."""
    items = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnop"
    for prev, name in zip(names, names[1 : levels + 1]):
        items.append(f"&{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(items) + "]"


BOMBS = {
    "description": HEAD + f"description: {_laughs()}\nchecks:\n{CHECK}",
    "parameter": HEAD
    + "checks:\n  - id: pgd\n    attack: pgd\n    threat: linf:0.1\n"
    + f'    expect: {{robust_accuracy: ">= 0.5"}}\n    params: {{steps: {_laughs()}}}\n',
    "eps": HEAD
    + f"threats:\n  t: {{norm: linf, eps: {_laughs()}}}\n"
    + 'checks:\n  - id: pgd\n    attack: pgd\n    threat: t\n    expect: {robust_accuracy: ">= 0.5"}\n',
}


@pytest.mark.parametrize("where", sorted(BOMBS))
def test_billion_laughs_is_refused_by_the_cli_within_memory(where: str, tmp_path: Path) -> None:
    path = tmp_path / f"bomb_{where}.yaml"
    path.write_text(BOMBS[where])
    assert path.stat().st_size < 600  # a few hundred bytes that expand to 9^9 values
    run = run_cli(["validate", str(path)])
    assert run.code == 2, run.stderr
    assert len(run.error_lines) == 1 and "billion laughs" in run.error_lines[0]
    assert run.peak_mb < PEAK_MB, f"{run.peak_mb:.0f} MB"


def test_deep_nesting_and_huge_files_are_refused_by_the_cli(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text(HEAD + "description: " + "[" * 10_000 + "]" * 10_000 + f"\nchecks:\n{CHECK}")
    run = run_cli(["validate", str(deep)])
    assert run.code == 2 and len(run.error_lines) == 1, run.stderr
    assert f"nest deeper than {MAX_DEPTH} levels" in run.stderr
    assert run.peak_mb < PEAK_MB

    big = tmp_path / "big.yaml"
    with big.open("w") as fh:  # 3 MB of valid checks (30 MB took 3.5 GB before the cap)
        fh.write(HEAD + "checks:\n")
        for i in range(60_000):
            fh.write(f'  - id: c{i}\n    expect: {{clean_accuracy: ">= 0.5"}}\n')
    run = run_cli(["validate", str(big)])
    assert run.code == 2 and len(run.error_lines) == 1, run.stderr
    assert "over the limit of 1000000 bytes" in run.stderr and MAX_SUITE_BYTES_ENV in run.stderr
    assert run.peak_mb < PEAK_MB


def test_the_size_limit_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "description: " + "x" * 2_000 + f"\nchecks:\n{CHECK}"
    monkeypatch.setenv(MAX_SUITE_BYTES_ENV, "1000")
    with pytest.raises(SuiteError, match=f"over the limit of 1000 bytes.*{MAX_SUITE_BYTES_ENV}"):
        parse_yaml(text, "s.yaml")
    monkeypatch.setenv(MAX_SUITE_BYTES_ENV, "5000")
    assert parse_yaml(text, "s.yaml")["name"] == "bomb"
    monkeypatch.setenv(MAX_SUITE_BYTES_ENV, "lots")
    with pytest.raises(SuiteError, match="not a positive number of bytes"):
        parse_yaml(text, "s.yaml")


def test_recursive_and_too_many_aliases_are_refused() -> None:
    with pytest.raises(SuiteError, match=r"s.yaml:1:\d+: refused: an alias refers to its own"):
        parse_yaml("a: &r [1, *r]\n", "s.yaml")
    many = "a: &x 1\nb: [" + ", ".join(["*x"] * 1_001) + "]\n"
    with pytest.raises(SuiteError, match="more than 1000 aliases"):
        parse_yaml(many, "s.yaml")
    # a merge-key bomb: each level merges the previous mapping nine times
    text = "a: &a {k0: 1, k1: 2, k2: 3, k3: 4, k4: 5, k5: 6, k6: 7, k7: 8, k8: 9}\n"
    for prev, name in zip("abcdefgh", "bcdefghi"):
        text += f"{name}: &{name} {{<<: [" + ", ".join([f"*{prev}"] * 9) + "]}\n"
    with pytest.raises(SuiteError, match=f"more than {MAX_ALIAS_NODES} extra values"):
        parse_yaml(text, "s.yaml")


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    doc = parse_yaml(
        "threats:\n  a: &t {norm: linf, eps: 0.1}\n  b: *t\n  c: {<<: *t, eps: 0.2}\n"
        "checks: [&c {id: x, attack: pgd}, {<<: *c, id: y}]\n",
        "s.yaml",
    )
    assert doc["threats"]["b"] == {"norm": "linf", "eps": 0.1}
    assert doc["threats"]["c"] == {"norm": "linf", "eps": 0.2}  # the own key overrides
    assert [c["id"] for c in doc["checks"]] == ["x", "y"] and doc["checks"][1]["attack"] == "pgd"
    with pytest.raises(SuiteError, match="duplicate key 'eps'"):
        parse_yaml("t: {norm: linf, eps: 0.1, eps: 0.2}\n", "s.yaml")
    ten = "x: " + "[" * 10 + "1" + "]" * 10 + "\n"  # legitimate nesting is far below the cap
    assert parse_yaml(ten, "s.yaml")["x"] == [[[[[[[[[[1]]]]]]]]]]


def test_messages_never_repr_huge_values() -> None:
    big = list(range(1_000_000))
    assert short_repr(big) == "a list of 1000000 items"
    assert len(short_repr("y" * 100_000)) < 250
    nested = [[list(range(50))] * 50] * 50  # shared: 125000 leaves, cheap to hold
    assert short_repr(nested).startswith("a list of 50 items")
    from robustbench_lite.suite.nodes import Node

    node = Node(["lol"] * 90_000, "checks[0].params.steps", 3, "s.yaml")
    with pytest.raises(SuiteError) as info:
        node.typed(int, "an integer")
    assert len(str(info.value)) < 400 and "a list of 90000 items" in str(info.value)
