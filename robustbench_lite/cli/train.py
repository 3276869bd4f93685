"""``robustbench-lite train RECIPE.yaml --out model.pt``: train by a recipe, write a checkpoint.

The recipe (see :mod:`robustbench_lite.training.recipe` and ``examples/recipes/``) is read with
the suites' safe YAML loader and its limits, and validated before anything is built; a bad
recipe is one line on stderr and exit code 2. The network is built from the recipe's ``arch``
(looked up in the current folder and the recipe's folder first) under the recipe's seed, as
the zoo builds its models, so ``examples/recipes/digits-cnn-pgd-at.yaml`` gives the weights of
``zoo:digits-cnn-at``. A progress bar per epoch goes to stderr (``-q`` hides it). The
checkpoint is written atomically: a state_dict with its ``rbl_meta`` (bounds, input shape,
classes, default threats with the trained threat first, data, and the ``training`` record:
arch, recipe hash, trainer, schedule, metrics), which every front door reads::

    robustbench-lite evaluate model.pt --arch robustbench_lite.zoo.digits:digits_cnn
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "train a model by a recipe YAML (PGD-AT, TRADES, noise, standard) and write its checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", metavar="RECIPE.yaml", help="the training recipe (examples/recipes/)")
    p.add_argument(
        "--out", required=True, metavar="MODEL.pt", help="the checkpoint to write (state_dict)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")


def read_recipe(spec: str) -> tuple[Any, str, Path]:
    """The parsed recipe, its name for messages, and its folder (size-limited, safe YAML)."""
    from robustbench_lite.core.errors import RecipeError
    from robustbench_lite.core.io import not_a_file
    from robustbench_lite.suite.nodes import MAX_SUITE_BYTES_ENV, max_suite_bytes, parse_yaml

    path = Path(spec).expanduser()
    problem = not_a_file(path)
    if problem:
        raise RecipeError(f"recipe {spec} {problem}; pass a YAML file such as examples/recipes/")
    limit = max_suite_bytes()
    try:
        with path.open("rb") as handle:  # never more than the limit (+1 to see it is over)
            data = handle.read(limit + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe {spec} cannot be read as UTF-8 text: {exc}") from None
    if len(data) > limit:
        raise RecipeError(
            f"recipe {spec} is over {limit} bytes (a recipe is about 500); raise the limit "
            f"with {MAX_SUITE_BYTES_ENV}=BYTES if it really is that long"
        )
    return parse_yaml(text, spec), spec, path.parent


def run(args: argparse.Namespace) -> int:
    import torch

    from robustbench_lite.core.io import atomic_write_bytes, check_output_path
    from robustbench_lite.models.loading import resolve_arch
    from robustbench_lite.training.recipe import parse_recipe
    from robustbench_lite.training.run import checkpoint_bytes, load_recipe_data, train_recipe

    out = check_output_path(args.out, what="--out")  # a bad path fails before any training
    doc, source, folder = read_recipe(args.recipe)
    recipe = parse_recipe(doc, source)
    data = load_recipe_data(recipe)
    with torch.random.fork_rng():
        torch.manual_seed(recipe.seed)
        net = resolve_arch(recipe.arch, paths=[Path.cwd(), folder])
        with _Progress(recipe, quiet=args.quiet) as on_epoch:
            result = train_recipe(recipe, net, data=data, on_epoch=on_epoch)
    atomic_write_bytes(out, checkpoint_bytes(net, result))
    metrics = result.metrics
    robust = (
        f", PGD-20 robust accuracy {metrics['pgd20_accuracy']:.4f} at {result.rbl_meta['training']['threat']}"
        if "pgd20_accuracy" in metrics
        else ""
    )
    print(
        f"wrote {args.out} ({recipe.trainer}, {recipe.schedule} schedule, {recipe.epochs} epochs, "
        f"recipe {recipe.hash}): clean accuracy {metrics['clean_accuracy']:.4f}{robust} on the "
        f"{recipe.data} test split; evaluate it with: robustbench-lite evaluate {args.out} "
        f"--arch {recipe.arch}"
    )
    return 0


class _Progress:
    """A rich progress bar on stderr advanced once per epoch (a no-op with ``quiet``)."""

    def __init__(self, recipe: Any, *, quiet: bool) -> None:
        self.recipe, self.quiet = recipe, quiet
        self.bar: Any = None

    def __enter__(self) -> Any:
        if self.quiet:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]train[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(file=sys.stderr),
        )
        self.bar.start()
        task = self.bar.add_task(
            f"{self.recipe.trainer}/{self.recipe.schedule}", total=self.recipe.epochs, status=""
        )

        def on_epoch(record: Any) -> None:
            status = f"loss {record.loss:.3f}  lr {record.lr:.2e}"
            if record.val_accuracy is not None:
                status += f"  val {record.val_accuracy:.3f}"
            self.bar.update(task, advance=1, status=status)

        return on_epoch

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
