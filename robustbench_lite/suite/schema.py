"""Suites: YAML files that say which threats a model must face and what it must score.

``load_suite(path_or_builtin)`` reads and validates a suite strictly, before any model work:
unknown keys, unknown components, parameters a component does not take, bad operators, threats
a component does not support and expectations on metrics a check does not produce all raise
:class:`SuiteError` naming the file, line and dotted path, e.g.
``suite.yaml:17 checks[2].params.stepz: unknown parameter of pgd; did you mean steps?``.

Schema (see DESIGN.md P(c))::

    version: 1
    name: my-suite
    seed: 0
    shard_size: 100                 # samples per cell (the unit of work and of resume)
    model: {checkpoint: zoo:digits-cnn}        # optional; --model / model= override it
    data: {source: digits, split: test, n: 200}   # no source: the model's own data
                                               # (options: {size: [56, 46]} for orl)
    threats:   {linf-01: {norm: linf, eps: 0.1}}
    defenses:  {bits5: {use: bit_depth, bits: 5}}
    checks:
      - {id: clean, expect: {clean_accuracy: ">= 0.9"}}
      - {id: pgd, attack: pgd, params: {steps: 20}, threat: linf-01,
         expect: {robust_accuracy: ">= 0.4"}}
      - {id: sweep, attack: pgd, threat: linf-01, eps: [0.05, 0.1, 0.2], expect: {}}
      - {id: std, attack: standard, threat: default, expect: {}}   # the model's default threats
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from robustbench_lite.core.errors import SuiteError, did_you_mean
from robustbench_lite.core.io import not_a_file
from robustbench_lite.suite.checks import (
    DEFAULT_THREAT,
    checks,
    defenses,
    parse_threat,
    positive,
    threats,
)
from robustbench_lite.suite.expect import Expect
from robustbench_lite.suite.model_spec import Check, DataSpec, DefenseSpec, ModelSpec, Suite
from robustbench_lite.suite.nodes import Node, max_suite_bytes, parse_yaml

__all__ = [
    "DEFAULT_THREAT",
    "Check",
    "DataSpec",
    "DefenseSpec",
    "Expect",
    "ModelSpec",
    "Suite",
    "builtin_names",
    "load_suite",
]

TOP_KEYS = (
    "version",
    "name",
    "description",
    "seed",
    "shard_size",
    "model",
    "data",
    "threats",
    "defenses",
    "checks",
)
MODEL_KEYS = (
    "checkpoint",
    "arch",
    "bounds",
    "mean",
    "std",
    "input_shape",
    "num_classes",
    "default_threats",
    "trust_checkpoint",
)
DATA_KEYS = ("source", "split", "n", "options")


def suite_text(path_or_builtin: str | Path) -> tuple[str, str, Path | None]:
    """``(text, display source, folder for relative paths)`` of a suite file or ``builtin:NAME``."""
    spec = str(path_or_builtin)
    if spec.startswith("builtin:"):
        name = spec[len("builtin:") :]
        names = builtin_names()
        if name not in names:
            raise SuiteError(
                f"unknown built-in suite {spec!r}{did_you_mean(name, names)}; "
                f"available: {', '.join('builtin:' + n for n in names)}"
            )
        return (files("robustbench_lite.suites") / f"{name}.yaml").read_text(), spec, None
    path = Path(spec).expanduser()
    problem = not_a_file(path)
    if problem:
        raise SuiteError(
            f"suite file {spec} {problem}; pass a YAML file or builtin:NAME "
            f"({', '.join('builtin:' + n for n in builtin_names())})"
        )
    try:
        with path.open("rb") as handle:  # never more than the size limit (+1 to see it is over)
            data = handle.read(max_suite_bytes() + 1)
        return data.decode("utf-8"), spec, path.parent
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"suite file {spec} cannot be read as UTF-8 text: {exc}") from None


def builtin_names() -> list[str]:
    """Names of the suites shipped in :mod:`robustbench_lite.suites`."""
    return sorted(
        p.name[:-5] for p in files("robustbench_lite.suites").iterdir() if p.name.endswith(".yaml")
    )


def load_suite(path_or_builtin: str | Path | Suite) -> Suite:
    """Read and validate a suite (a YAML file or ``builtin:NAME``); no model or data is loaded."""
    if isinstance(path_or_builtin, Suite):
        return path_or_builtin
    text, source, base = suite_text(path_or_builtin)
    doc = parse_yaml(text, source)
    root = Node(doc, "", getattr(doc, "line", 1), source)
    if doc is None:
        root.fail("the suite is empty; it needs at least 'checks'")
    top = root.mapping(TOP_KEYS, required=("checks",))
    version = top["version"].typed(int, "an integer") if "version" in top else 1
    if version != 1:
        top["version"].fail(
            f"unsupported suite version {version}; this robustbench_lite reads version 1"
        )
    default_name = Path(source).stem if not source.startswith("builtin:") else source[8:]
    name = top["name"].typed(str, "a string") if "name" in top else default_name
    seed = top["seed"].typed(int, "an integer") if "seed" in top else 0
    shard = top["shard_size"].typed(int, "an integer") if "shard_size" in top else 100
    if shard < 1:
        top["shard_size"].fail(f"{shard} must be >= 1")
    named = threats(top["threats"]) if "threats" in top else {}
    guards = defenses(top["defenses"]) if "defenses" in top else {}
    return Suite(
        name=name,
        checks=checks(top["checks"], named, guards),
        seed=seed,
        shard_size=shard,
        source=source,
        version=version,
        data=_data(top["data"], base) if "data" in top else DataSpec(),
        model=_model(top["model"], base, source) if "model" in top else None,
        threats=tuple(named.items()),
        defenses=tuple(guards.values()),
        description=top["description"].typed(str, "a string") if "description" in top else "",
    )


def _resolve(path: str, base: Path | None) -> str:
    """A relative checkpoint path is relative to the suite file; ``zoo:NAME`` stays as is."""
    if base is None or path.startswith("zoo:") or Path(path).expanduser().is_absolute():
        return path
    return str(base / path)


def _model(node: Node, base: Path | None, source: str = "suite") -> ModelSpec:
    folder = str(base) if base is not None else None
    if isinstance(node.value, str):
        return ModelSpec(_resolve(node.value, base), folder=folder, origin=source)
    keys = node.mapping(MODEL_KEYS, required=("checkpoint",))
    options: dict[str, Any] = {}
    for key in ("bounds", "mean", "std", "input_shape", "default_threats"):
        if key in keys:
            items = keys[key].typed(list, "a list")
            kind = (
                str if key == "default_threats" else (int if key == "input_shape" else (int, float))
            )
            for i in range(len(items)):
                keys[key].child(i).typed(kind, "a string" if kind is str else "a number")
            options[key] = tuple(float(v) if kind == (int, float) else v for v in items)
    if "bounds" in options and len(options["bounds"]) != 2:
        keys["bounds"].fail("write the bounds as [lo, hi], e.g. [0, 1]")
    for spec in options.get("default_threats", ()):
        parse_threat(keys["default_threats"], spec)
    if "num_classes" in keys:
        options["num_classes"] = keys["num_classes"].typed(int, "an integer")
    checkpoint = keys["checkpoint"].typed(str, "a string such as zoo:digits-cnn or a file path")
    arch = (
        keys["arch"].typed(str, "an import path package.module:Class") if "arch" in keys else None
    )
    trust = (
        keys["trust_checkpoint"].typed(bool, "true or false")
        if "trust_checkpoint" in keys
        else False
    )
    return ModelSpec(
        _resolve(checkpoint, base), arch, tuple(options.items()), trust, folder, source
    )


def _data(node: Node, base: Path | None) -> DataSpec:
    if isinstance(node.value, str):
        node = Node({"source": node.value}, node.path, node.line, node.source)
    keys = node.mapping(DATA_KEYS)
    source = keys["source"].typed(str, "a dataset name or npz:PATH") if "source" in keys else None
    if (
        source is not None
        and source.startswith("npz:")
        and base is not None
        and not Path(source[4:]).is_absolute()
    ):
        source = f"npz:{base / source[4:]}"
    split = keys["split"].typed(str, "train or test") if "split" in keys else "test"
    if split not in ("train", "test"):
        keys["split"].fail(f"unknown split {split!r}; choose train or test")
    n = positive(keys["n"]) if "n" in keys else None
    options: dict[str, Any] = {}
    if "options" in keys:
        if source is None:
            keys["options"].fail("options need a source: name the dataset they belong to")
        for key, value in keys["options"].typed(dict, "a mapping of option: value").items():
            options[str(key)] = tuple(value) if isinstance(value, list) else value
    return DataSpec(source, split, n, tuple(options.items()))
