"""pytest plugin of robustbench_lite (loaded through the ``pytest11`` entry point).

PYTEST_DONT_REWRITE

It loads in every pytest session of the environment, so it imports nothing but pytest and the
standard-library option table (``suite/options.py``) at load time (torch and the rest of the
package load when a robustness test runs). Opt out with
``-p no:robustbench_lite``.

* Files matching ``rb_*.yaml`` (ini option ``rb_suite_files``) are suites; each check is one
  test item, and a failure shows the metric, its value and the expectation. The session
  report holds the checks that ran as items: a deselected check (``-k``) is left out.
* The ``robustness`` fixture: ``robustness.attack(name, model, data, threat, **params)``,
  ``.verify(...)``, ``.detect(...)``, ``.suite(path, model=...)``; results go into one
  session report (``--rb-report PATH``) and a table at the end of the run.
* ``@pytest.mark.robustness(seed=0, n=64, budget_s=120)``: unknown keywords are errors. The
  ``slow`` and ``gpu`` markers are declared; ``gpu`` tests skip when torch sees no CUDA device.
* ``--rb-skip`` / ``--rb-only``: skip the robustness tests (suite checks and tests using the
  fixture), or everything else, as pytest-benchmark's ``--benchmark-skip`` / ``--benchmark-only``.
* ``--rb-quick``, ``--rb-seed``, ``--rb-device``, ``--rb-compare BASELINE.json`` and
  ``--rb-compare-fail robust_accuracy:0.02`` (fail the session on a larger regression).
* ``--rb-trust-checkpoint``: let models load that run code (TorchScript, full unpickling). A
  suite's ``model: {trust_checkpoint: true}`` only asks for it; without this option such a
  suite fails. ``--rb-report PATH`` is checked before any test runs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from robustbench_lite.suite.options import add_pytest_options

MARKER_KEYS = ("seed", "n", "budget_s")
_SESSION = pytest.StashKey["RobustnessSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustness", "robustbench_lite: robustness tests")
    add_pytest_options(group)  # --rb-seed, --rb-quick, --rb-device, --rb-report, --rb-compare...
    group.addoption(
        "--rb-skip",
        action="store_true",
        help="skip robustness tests (YAML suite checks and tests using the robustness fixture)",
    )
    group.addoption(
        "--rb-only", action="store_true", help="run only robustness tests; skip every other test"
    )
    group.addoption(
        "--rb-trust-checkpoint",
        action="store_true",
        help="allow models whose loading runs code (TorchScript, full unpickling); trusted "
        "files only. A suite's trust_checkpoint: true only asks for this",
    )
    parser.addini(
        "rb_suite_files",
        "glob patterns of YAML suites collected as tests",
        type="args",
        default=["rb_*.yaml"],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "robustness(seed=0, n=None, budget_s=None): settings of a test using the robustness fixture",
    )
    config.addinivalue_line("markers", "slow: a long robustness test (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "gpu: needs a CUDA device; skipped when torch sees none")
    if config.getoption("--rb-compare-fail", None) and not config.getoption("--rb-compare", None):
        raise pytest.UsageError("--rb-compare-fail needs --rb-compare BASELINE.json")
    if config.getoption("--rb-skip", False) and config.getoption("--rb-only", False):
        raise pytest.UsageError("--rb-skip and --rb-only exclude each other; pass one of them")
    report_path = config.getoption("--rb-report", None)
    if report_path:  # a path that cannot be written fails now, not after every test ran
        from robustbench_lite.core.errors import OutputPathError
        from robustbench_lite.core.io import check_output_path

        try:
            check_output_path(report_path, what=f"--rb-report {report_path}")
        except OutputPathError as exc:
            raise pytest.UsageError(str(exc)) from None
    session = RobustnessSession(config)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "robustbench_lite-session")


def pytest_collect_file(file_path: Any, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and any(
        fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("rb_suite_files")
    ):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--rb-skip`` / ``--rb-only``: a robustness test is a suite check or uses the ``robustness`` fixture."""
    skip, only = config.getoption("--rb-skip", False), config.getoption("--rb-only", False)
    if not (skip or only):
        return
    reason = "robustness test (--rb-skip)" if skip else "not a robustness test (--rb-only)"
    for item in items:
        if is_robustness_test(item) == bool(skip):
            item.add_marker(pytest.mark.skip(reason=reason))


def is_robustness_test(item: pytest.Item) -> bool:
    """True for a YAML suite check and for a test that requests the ``robustness`` fixture."""
    return isinstance(item, SuiteItem) or "robustness" in getattr(item, "fixturenames", ())


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("marked gpu and torch sees no CUDA device")
    for mark in item.iter_markers("robustness"):
        problem = marker_problem(mark.args, mark.kwargs)
        if problem:
            pytest.fail(f"@pytest.mark.robustness: {problem}", pytrace=False)


def marker_problem(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """Why the marker's arguments are invalid, or None."""
    if args:
        return f"takes keywords only ({', '.join(MARKER_KEYS)}), got positional {args!r}"
    for key, value in kwargs.items():
        if key not in MARKER_KEYS:
            return f"unknown keyword {key!r}; allowed: {', '.join(MARKER_KEYS)}"
        if key == "seed" and (isinstance(value, bool) or not isinstance(value, int)):
            return f"seed={value!r} must be an integer"
        if (
            key == "n"
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int) or value < 1)
        ):
            return f"n={value!r} must be a positive integer"
        if (
            key == "budget_s"
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0)
        ):
            return f"budget_s={value!r} must be a positive number of seconds"
    return None


@pytest.fixture
def robustness(request: pytest.FixtureRequest) -> Any:
    """Run attacks, verifiers, detectors and suites; results go into the session report."""
    from robustbench_lite.pytest_plugin.fixture import Robustness

    settings: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("robustness"))):
        settings.update(mark.kwargs)
    config = request.config
    if config.getoption("--rb-seed") is not None:
        settings["seed"] = config.getoption("--rb-seed")
    return Robustness(
        config.stash[_SESSION],
        request.node.nodeid,
        seed=int(settings.get("seed", 0)),
        n=settings.get("n"),
        budget_s=settings.get("budget_s"),
        quick=bool(config.getoption("--rb-quick")),
        device=config.getoption("--rb-device"),
        trust_checkpoint=bool(config.getoption("--rb-trust-checkpoint", False)),
    )


class RobustnessSession:
    """Collects every robustness result of the pytest session; reports and compares at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[Any] = []
        self.models: list[str] = []
        self.comparison: tuple[Any, list[Any]] | None = None
        self.write_error: str | None = None

    def record(self, results: Any, model: str) -> None:
        """Add CheckResults (already prefixed with their test) for ``model``."""
        self.results.extend(results)
        if model not in self.models:
            self.models.append(model)

    def report(self) -> Any:
        from robustbench_lite.report.model import Report, environment

        seed = self.config.getoption("--rb-seed")
        return Report(
            suite="pytest",
            model=", ".join(self.models) or "-",
            results=tuple(self.results),
            env=environment(
                seed=seed if seed is not None else "per test",
                quick=bool(self.config.getoption("--rb-quick")),
            ),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.results:
            return
        from robustbench_lite.core.io import write_atomic

        report = self.report()
        path = self.config.getoption("--rb-report")
        if path:
            try:
                write_atomic(path, report.to_json())
            except OSError as exc:  # keep the session's results: the summary table shows them
                self.write_error = (
                    f"--rb-report {path}: the report could not be written ({exc}); the results "
                    "are in the robustness table below"
                )
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
        baseline_path = self.config.getoption("--rb-compare")
        if baseline_path:
            from robustbench_lite.report import compare as rc

            baseline = rc.load_baseline(baseline_path)
            found = rc.changes(report, baseline)
            spec = self.config.getoption("--rb-compare-fail")
            known = rc.baseline_metrics(baseline)
            worse = rc.regressions(found, rc.parse_fail_spec(spec, known=known)) if spec else []
            self.comparison = (found, worse)
            if worse and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        if self.write_error:
            terminalreporter.write_line(f"ERROR {self.write_error}", red=True, bold=True)
        terminalreporter.write_sep("-", "robustness")
        terminalreporter.write_line(self.report().to_table())
        if self.comparison is not None:
            from robustbench_lite.report.compare import change_table

            found, worse = self.comparison
            terminalreporter.write_sep("-", "robustness compared with baseline")
            terminalreporter.write_line(change_table(found))
            for c in worse:
                terminalreporter.write_line(
                    f"REGRESSION {c.check} {c.metric}: {c.baseline:.4f} -> {c.current:.4f}",
                    red=True,
                    bold=True,
                )


class CheckFailed(Exception):
    """A suite check's expectations did not hold (shown without a traceback)."""


class SuiteFile(pytest.File):
    """A YAML suite; each check becomes a :class:`SuiteItem`."""

    _report: Any = None
    _error: BaseException | None = None

    def collect(self) -> Iterator[SuiteItem]:
        from robustbench_lite.suite.schema import load_suite

        self.suite = load_suite(self.path)
        seen = set()
        for check in self.suite.checks:
            if check.id not in seen:
                seen.add(check.id)
                yield SuiteItem.from_parent(self, name=check.id, check=check)

    def run_once(self) -> Any:
        """Run the whole suite once (so cross-checks between checks hold); cache the outcome."""
        if self._report is None and self._error is None:
            from robustbench_lite.suite.runner import run_suite

            opt = self.config.getoption
            try:
                self._report = run_suite(
                    self.suite,
                    quick=bool(opt("--rb-quick")),
                    seed=opt("--rb-seed"),
                    device=opt("--rb-device"),
                    trust_checkpoint=bool(opt("--rb-trust-checkpoint")),
                )
            except Exception as exc:  # re-raised by every item of this file
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._report

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from robustbench_lite.core.errors import RobustbenchLiteError

        if excinfo.errisinstance(RobustbenchLiteError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class SuiteItem(pytest.Item):
    """One check of a YAML suite."""

    def __init__(self, *, check: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.check = check

    def runtest(self) -> None:
        report = self.parent.run_once()  # type: ignore[union-attr]
        mine = [
            r
            for r in report.results
            if r.id == self.check.id or r.id.startswith(self.check.id + "@")
        ]
        # each item records its own results: a check deselected (-k, -m) or skipped never
        # reaches the session report, though the suite ran whole for its cross-checks
        prefix = f"{self.parent.nodeid}::"  # type: ignore[union-attr]
        self.config.stash[_SESSION].record([_prefixed(r, prefix) for r in mine], report.model)
        failed = [r for r in mine if not r.passed]
        if failed:
            raise CheckFailed("\n".join(_failure_lines(r) for r in failed))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from robustbench_lite.core.errors import RobustbenchLiteError

        if excinfo.errisinstance((CheckFailed, RobustbenchLiteError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, max(self.check.line - 1, 0), self.name


def _failure_lines(r: Any) -> str:
    where = ", ".join(x for x in (r.component, r.threat) if x)
    lines = [f"check {r.id}{f' ({where})' if where else ''} failed:"]
    lines += [f"  {f}" for f in r.detail.get("failed", [])]
    if r.detail.get("soundness"):
        lines.append(f"  {r.detail['soundness']}")
    return "\n".join(lines)


def _prefixed(result: Any, prefix: str) -> Any:
    from dataclasses import replace

    return replace(result, id=prefix + result.id)
