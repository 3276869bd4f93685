"""Face: the ``robustbench-lite`` command line.

``main`` builds the parser and maps errors to exit codes (0 ok, 1 expectation failed, 2 bad input,
3 internal error); every other module here is one command with ``add_parser`` and ``run``.

May import: everything below it (core, content, suite, report); never ``pytest_plugin``.
"""
