"""CLI subcommands, one module each (see :mod:`robustbench_lite.cli`)."""
