"""The plugin under hostile input: a collected suite cannot switch trust on, and ``--rb-report``
is checked before any test runs and never lost after them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hostile_files import malicious_torchscript

# pytester's in-process runs must not drop package modules (see conftest.package_imported)
pytestmark = pytest.mark.usefixtures("package_imported")

pytest_plugins = ["pytester"]

SUITE = """\
version: 1
name: asks-for-trust
model: {{checkpoint: {checkpoint}, trust_checkpoint: true, input_shape: [1, 8, 8]}}
data: {{source: digits, n: 8}}
checks:
  - {{id: clean, expect: {{}}}}
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


def test_collected_suite_cannot_grant_itself_trust(pytester: pytest.Pytester) -> None:
    archive, marker = malicious_torchscript(pytester.path)
    pytester.makefile(".yaml", rb_trust=SUITE.format(checkpoint=archive.name))
    refused = pytester.runpytest("-p", "no:cacheprovider")
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*asks for trust_checkpoint*--rb-trust-checkpoint*"])
    assert not marker.exists(), "plain pytest collecting the suite ran the archive's code"
    granted = pytester.runpytest("-p", "no:cacheprovider", "--rb-trust-checkpoint")
    granted.assert_outcomes(passed=1)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "dangling"])
def test_rb_report_path_is_refused_before_any_test(pytester: pytest.Pytester, kind: str) -> None:
    ran = pytester.path / "RAN"
    pytester.makepyfile(test_plain=f"def test_x():\n    open({str(ran)!r}, 'w').close()\n")
    target = pytester.path / "out.json"
    if kind == "device":
        target = Path("/dev/null")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to(pytester.path / "nowhere.json")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--rb-report={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    needle = {
        "device": "character device",
        "fifo": "is a FIFO",
        "folder": "is a folder",
        "dangling": "symlink to nothing",
    }[kind]
    result.stderr.fnmatch_lines([f"*--rb-report {target}*{needle}*"])
    assert not ran.exists(), "a test ran before the report path was checked"


def test_report_that_cannot_be_written_after_the_run_keeps_the_results(
    pytester: pytest.Pytester,
) -> None:
    """The path is fine at start; a test turns it into a folder, so the final write fails."""
    out = pytester.path / "out.json"
    pytester.makepyfile(
        test_rb=f"""
        import os

        def test_attack(robustness):
            robustness.attack("fgsm", "zoo:digits-cnn", "digits", "linf:0.1")
            os.mkdir({str(out)!r})
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", f"--rb-report={out}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            f"*--rb-report {out}: the report could not be written*results are in the robustness table*",
            "*robustness*",
            "*fgsm@linf:0.1*",
        ]
    )
    assert out.is_dir()
