"""The plugin's session report holds what ran (issue 15, items 5 and 7): a YAML check
deselected with ``-k`` is left out of the table and the report; values measured without an
expectation read ``measured``."""

from __future__ import annotations

import json

import pytest

# pytester's in-process runs must not drop package modules (see conftest.package_imported)
pytestmark = pytest.mark.usefixtures("package_imported")

pytest_plugins = ["pytester"]

SUITE = """\
version: 1
name: plug
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 12}
shard_size: 12
checks:
  - id: clean
    expect: {clean_accuracy: ">= 0.8"}
  - id: fgsm-strict
    attack: fgsm
    threat: linf:0.2
    expect: {robust_accuracy: ">= 0.99"}
  - id: pgd-measured
    attack: pgd
    params: {steps: 2}
    threat: linf:0.1
    expect: {}
"""


@pytest.fixture(autouse=True, scope="module")
def _warm_imports() -> None:
    """pytester's in-process runs drop modules first imported inside them, and numpy's C modules
    cannot be imported twice; import what a robustness run needs here, once."""
    import robustbench_lite as rbl
    from robustbench_lite.report.model import environment

    x, y = rbl.load_data("digits", n=2)
    rbl.create_attack("fgsm")(rbl.load_model("zoo:digits-cnn"), x, y, "linf:0.1")
    environment()


def test_deselected_check_is_left_out_of_table_and_report(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", rb_plug=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--rb-report=rb.json", "-k", "not fgsm")
    result.assert_outcomes(passed=2, deselected=1)
    assert result.ret == pytest.ExitCode.OK
    report = json.loads((pytester.path / "rb.json").read_text())
    assert [(c["id"], c["verdict"]) for c in report["checks"]] == [
        ("rb_plug.yaml::clean", "pass"),
        ("rb_plug.yaml::pgd-measured", "measured"),
    ]
    assert report["passed"] is True and report["verdict"] == "pass"
    out = result.stdout.str()
    table = out[out.index("robustness") :]
    assert "fgsm-strict" not in table and "FAIL" not in table
    result.stdout.fnmatch_lines(
        ["*rb_plug.yaml::clean *PASS", "*rb_plug.yaml::pgd-measured *measured"]
    )


def test_selected_failing_check_still_fails(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", rb_plug=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--rb-report=rb.json", "-k", "fgsm")
    result.assert_outcomes(failed=1, deselected=2)
    report = json.loads((pytester.path / "rb.json").read_text())
    assert [(c["id"], c["verdict"]) for c in report["checks"]] == [
        ("rb_plug.yaml::fgsm-strict", "fail")
    ]


def test_fixture_results_read_measured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fx="""
        def test_attack(robustness):
            r = robustness.attack("fgsm", "zoo:digits-cnn", "digits", "linf:0.1")
            assert 0 <= r.robust_accuracy <= 1
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--rb-report=rb.json")
    result.assert_outcomes(passed=1)
    (check,) = json.loads((pytester.path / "rb.json").read_text())["checks"]
    assert check["passed"] is True and check["verdict"] == "measured"
    result.stdout.fnmatch_lines(["*test_fx.py::test_attack::fgsm@linf:0.1 *measured"])
