"""An input path that is a folder or a device is named as such (not "does not exist")."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustbench_lite.cli.main import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["attack", "fgsm", "--model", "{dir}", "--threat", "linf:0.1"],
            "is a folder, not a regular file",
        ),
        (
            ["attack", "fgsm", "--model", "/dev/null", "--threat", "linf:0.1"],
            "is a character device",
        ),
        (["attack", "fgsm", "--model", "{dir}/none.pt", "--threat", "linf:0.1"], "does not exist"),
        (["run", "{dir}"], "suite file {dir} is a folder"),
        (
            [
                "attack",
                "fgsm",
                "--model",
                "zoo:digits-mlp",
                "--data",
                "npz:/dev/null",
                "--threat",
                "linf:0.1",
            ],
            "data file /dev/null is a character device",
        ),
    ],
    ids=["model-folder", "model-device", "model-missing", "suite-folder", "npz-device"],
)
def test_input_paths_say_what_they_are(
    tmp_path: Path, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.replace("{dir}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected.replace("{dir}", str(tmp_path)) in err, err


def test_verify_refuses_an_eps_beyond_the_input_range(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["verify", "--model", "zoo:digits-mlp", "--threat", "linf:30", "--n", "2"]
    assert main(argv) == 2
    assert "largest meaningful linf eps is 1" in capsys.readouterr().err
