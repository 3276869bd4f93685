"""``robustbench-lite list [attacks|verifiers|defenses|detectors|datasets|zoo|suites] [PATTERN]``."""

from __future__ import annotations

import argparse
import fnmatch

NAME = "list"
HELP = "list registered components, datasets, zoo models or built-in suites"
KINDS = ("attacks", "verifiers", "defenses", "detectors", "datasets", "zoo", "suites")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", default="attacks", choices=KINDS)
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'apgd*'")


def names(kind: str) -> list[str]:
    """The names of one kind of thing."""
    if kind == "datasets":
        from robustbench_lite.datasets import list_datasets

        return list_datasets()
    if kind == "zoo":
        from robustbench_lite.zoo import zoo_names

        return zoo_names()
    if kind == "suites":
        from importlib.resources import files

        return sorted(
            f"builtin:{p.name[:-5]}"
            for p in files("robustbench_lite.suites").iterdir()
            if p.name.endswith(".yaml")
        )
    from robustbench_lite.core.registry import REGISTRIES

    return REGISTRIES[kind].names()


def run(args: argparse.Namespace) -> int:
    """One name a line; a component with aliases as ``NAME (alias OLD)``, found by either."""
    from robustbench_lite.core.registry import REGISTRIES

    registry = REGISTRIES.get(args.kind)
    for name in names(args.kind):
        aliases = registry.aliases(name) if registry is not None else []
        if any(fnmatch.fnmatch(n, args.pattern) for n in [name, *aliases]):
            print(f"{name} (alias {', '.join(aliases)})" if aliases else name)
    return 0
