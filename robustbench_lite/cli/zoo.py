"""``robustbench-lite zoo list [--train]``: the embedded models, their accuracy and recipe."""

from __future__ import annotations

import argparse
import json

NAME = "zoo"
HELP = "show the embedded model zoo (name, clean accuracy, training time, recipe)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list",), help="what to do")
    p.add_argument("--train", action="store_true", help="train models not yet in the cache")


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.zoo import cached_info, load_zoo_model, zoo_entry, zoo_names

    rows = [("name", "clean_acc", "train_s", "description", "recipe")]
    for name in zoo_names():
        info = cached_info(name)
        if info is None and args.train:
            info = load_zoo_model(name).meta
        entry = zoo_entry(name)
        acc = f"{info['clean_accuracy']:.4f}" if info else "untrained"
        secs = f"{info['train_time_s']:.1f}" if info else "-"
        rows.append(
            (name, acc, secs, entry.description, json.dumps(dict(entry.recipe), sort_keys=True))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return 0
