"""pytest plugin of robustbench_lite (loaded through the ``pytest11`` entry point).

PYTEST_DONT_REWRITE

It loads in every pytest session of the environment, so it imports nothing heavy at load time.
Opt out with ``-p no:robustbench_lite``.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "robustness(**kw): robustness test settings (seed, n, budget_s)")
