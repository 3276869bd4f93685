"""The pytest plugin, tested through pytester: options, YAML suites as tests, fixture, marker, gate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# pytester's in-process runs must not drop package modules (see conftest.package_imported)
pytestmark = pytest.mark.usefixtures("package_imported")

pytest_plugins = ["pytester"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ci"

SUITE = """\
version: 1
name: plug
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 24}
shard_size: 12
checks:
  - id: clean
    expect: {clean_accuracy: ">= 0.8"}
  - id: pgd-strict
    attack: pgd
    params: {steps: 3}
    threat: linf:0.2
    expect: {robust_accuracy: ">= 0.99"}
"""


def test_help_lists_the_robustness_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*robustbench_lite: robustness tests*",
            "*--rb-seed=SEED*",
            "*--rb-quick*",
            "*--rb-device=DEVICE*",
            "*--rb-report=PATH*",
            "*--rb-compare=BASELINE.json*",
            "*--rb-compare-fail=METRIC:AMOUNT*",
            "*--rb-skip*",
            "*--rb-only*",
            "*rb_suite_files*",
        ]
    )


def test_plugin_module_imports_nothing_heavy() -> None:
    """The plugin loads in every pytest session: it and the package it lives in load only pytest."""
    code = (
        "import sys; before = {m.split('.')[0] for m in sys.modules}; "
        "import robustbench_lite.pytest_plugin.plugin; "
        "print(sorted({m.split('.')[0] for m in sys.modules} - before - set(sys.stdlib_module_names) - "
        "{'robustbench_lite', '_pytest', 'pytest', 'pluggy', 'iniconfig', 'packaging', 'exceptiongroup', "
        "'tomli', 'pygments', 'py'}))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True
    )
    assert (
        out.stdout.strip() == "[]"
    )  # no torch, numpy, z3, foolbox, matplotlib, ray, rich, sklearn


@pytest.fixture(autouse=True, scope="module")
def _warm_imports() -> None:
    """pytester's in-process runs drop modules first imported inside them, and numpy's C modules
    cannot be imported twice; import what a robustness run needs here, once."""
    import robustbench_lite as rbl
    from robustbench_lite.report.model import environment

    x, y = rbl.load_data("digits", n=2)
    rbl.create_attack("fgsm")(rbl.load_model("zoo:digits-cnn"), x, y, "linf:0.1")
    environment()


def test_yaml_suite_checks_are_items_with_metric_value_expectation(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", rb_plug=SUITE)
    pytester.makefile(".yaml", other=SUITE)  # not rb_*.yaml: not collected
    result = pytester.runpytest("-p", "no:cacheprovider", "--rb-report=rb.json", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*rb_plug.yaml::clean PASSED*",
            "*rb_plug.yaml::pgd-strict FAILED*",
            "*_ pgd-strict _*",
            "check pgd-strict (pgd, linf:0.2) failed:*",
            "*robust_accuracy = 0.*, expected >= 0.99*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    report = json.loads((pytester.path / "rb.json").read_text())
    assert report["schema"] == "robustbench_lite.report/1" and report["passed"] is False
    assert [c["id"] for c in report["checks"]] == [
        "rb_plug.yaml::clean",
        "rb_plug.yaml::pgd-strict",
    ]


def test_bad_yaml_suite_is_a_one_line_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", rb_bad=SUITE.replace("steps: 3", "stepz: 3"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*rb_bad.yaml:11 checks[[]1[]].params.stepz: unknown parameter of pgd; did you mean steps*"
        ]
    )


def test_fixture_marker_and_session_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_rb="""
        import pytest

        @pytest.mark.robustness(seed=1, n=10)
        def test_fgsm(robustness):
            r = robustness.attack("fgsm", "zoo:digits-cnn", "digits", "linf:0.1")
            assert r.success.shape == (10,)
            assert robustness.seed == 1

        @pytest.mark.robustness(n=10)
        def test_suite(robustness):
            report = robustness.suite("builtin:smoke")
            assert [r.detail["n"] for r in report.results] == [10] * 4

        @pytest.mark.robustness(sed=1)
        def test_typo(robustness):
            pass

        @pytest.mark.robustness(n=0)
        def test_bad_n(robustness):
            pass
    """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--rb-report=out.json")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.robustness: unknown keyword 'sed'; allowed: seed, n, budget_s*",
            "*@pytest.mark.robustness: n=0 must be a positive integer*",
        ]
    )
    report = json.loads((pytester.path / "out.json").read_text())
    ids = [c["id"] for c in report["checks"]]
    assert ids == ["test_rb.py::test_fgsm::fgsm@linf:0.1"] + [
        f"test_rb.py::test_suite::{c}" for c in ("clean", "fgsm-linf", "pgd-linf", "pgd-linf-bits4")
    ]
    assert report["checks"][0]["detail"]["n"] == 10


def test_rb_skip_and_rb_only_select_by_the_robustness_fixture(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", rb_plug=SUITE.replace(">= 0.99", ">= 0").replace("n: 24", "n: 12"))
    pytester.makepyfile(
        test_mixed="""
        def test_plain():
            assert 1 + 1 == 2

        import pytest

        @pytest.mark.robustness(n=8)
        def test_attack(robustness):
            assert robustness.device == "cpu"  # --rb-device reaches the fixture
            assert robustness.attack("fgsm", "zoo:digits-cnn", "digits", "linf:0.1").success.shape == (8,)
    """
    )
    skipped = pytester.runpytest("-p", "no:cacheprovider", "--rb-skip", "-rs")
    skipped.assert_outcomes(passed=1, skipped=3)
    skipped.stdout.fnmatch_lines(["*robustness test (--rb-skip)*"])
    only = pytester.runpytest("-p", "no:cacheprovider", "--rb-only", "--rb-device=cpu", "-rs")
    only.assert_outcomes(passed=3, skipped=1)
    only.stdout.fnmatch_lines(["*not a robustness test (--rb-only)*"])
    both = pytester.runpytest("-p", "no:cacheprovider", "--rb-skip", "--rb-only")
    assert both.ret == pytest.ExitCode.USAGE_ERROR
    both.stderr.fnmatch_lines(["*--rb-skip and --rb-only exclude each other*"])


def test_gpu_marker_skips_without_cuda_and_slow_is_declared(pytester: pytest.Pytester) -> None:
    import torch

    pytester.makepyfile(
        test_marks="""
        import pytest

        @pytest.mark.gpu
        def test_on_gpu():
            import torch
            assert torch.cuda.is_available()

        @pytest.mark.slow
        def test_slow():
            pass
    """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers", "-rs")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["*marked gpu and torch sees no CUDA device*"])


def test_compare_fail_gates_regressions(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", rb_plug=SUITE.replace(">= 0.99", ">= 0").replace("n: 24", "n: 12"))
    first = pytester.runpytest("-p", "no:cacheprovider", "--rb-report=base.json")
    first.assert_outcomes(passed=2)
    base = json.loads((pytester.path / "base.json").read_text())
    measured = base["checks"][1]["values"]["robust_accuracy"]
    base["checks"][1]["values"]["robust_accuracy"] = measured + 0.05  # the baseline was more robust
    (pytester.path / "better.json").write_text(json.dumps(base))
    gated = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--rb-compare=better.json",
        "--rb-compare-fail=robust_accuracy:0.02",
    )
    assert gated.ret == pytest.ExitCode.TESTS_FAILED
    gated.stdout.fnmatch_lines(["*REGRESSION rb_plug.yaml::pgd-strict robust_accuracy:*"])
    loose = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--rb-compare=better.json",
        "--rb-compare-fail=robust_accuracy:0.1",
    )
    assert loose.ret == pytest.ExitCode.OK
    loose.stdout.fnmatch_lines(
        ["*robustness compared with baseline*", "*pgd-strict*robust_accuracy*-0.0500*"]
    )


def test_example_ci_repository_passes(pytester: pytest.Pytester) -> None:
    for name in ("mynet.py", "rb_model.yaml", "test_robustness.py", "pytest.ini"):
        shutil.copy(EXAMPLE / name, pytester.path / name)
    (pytester.path / "checkpoints").mkdir()
    shutil.copy(
        EXAMPLE / "checkpoints" / "digits_mlp.pt", pytester.path / "checkpoints" / "digits_mlp.pt"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--rb-quick", "--rb-report=rb.json"
    )
    result.assert_outcomes(passed=5)
    assert len(json.loads((pytester.path / "rb.json").read_text())["checks"]) == 6
