"""Face: the pytest plugin (``rb_*.yaml`` suites as tests, ``--rb-*`` options) and the
``robustness`` fixture for hand-written robustness tests.

May import: everything below it (core, content, suite, report); never ``cli``.
"""
