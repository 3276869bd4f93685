"""A suite may ask for ``trust_checkpoint`` but never grant it: only the caller can
(``run_suite(trust_checkpoint=True)``, CLI ``--trust-checkpoint``, pytest ``--rb-trust-checkpoint``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_files import malicious_torchscript

import robustbench_lite as rbl
from robustbench_lite.suite.schema import load_suite

SUITE = """\
version: 1
name: asks-for-trust
model: {{checkpoint: {checkpoint}, trust_checkpoint: {trust}, input_shape: [1, 8, 8]}}
data: {{source: digits, n: 8}}
checks:
  - {{id: clean, expect: {{}}}}
"""


def _suite(tmp_path: Path, *, trust: str = "true") -> tuple[Path, Path]:
    archive, marker = malicious_torchscript(tmp_path)
    path = tmp_path / "rb_trust.yaml"
    path.write_text(SUITE.format(checkpoint=archive.name, trust=trust))
    return path, marker


def test_suite_key_is_a_request_not_a_grant(tmp_path: Path) -> None:
    path, marker = _suite(tmp_path)
    assert load_suite(path).model.trust_checkpoint  # type: ignore[union-attr]  # it asks
    db = tmp_path / "r.sqlite"
    with pytest.raises(rbl.SuiteError) as info:
        rbl.run_suite(path, db=db)
    msg = str(info.value)
    assert "\n" not in msg and "asks for trust_checkpoint" in msg
    for grant in ("--trust-checkpoint", "--rb-trust-checkpoint", "trust_checkpoint=True"):
        assert grant in msg
    assert not marker.exists(), "the suite switched trust on by itself"
    assert not db.exists(), "refused before the store is opened"


def test_suite_not_asking_still_cannot_load_code(tmp_path: Path) -> None:
    path, marker = _suite(tmp_path, trust="false")
    with pytest.raises(rbl.CheckpointError, match="--trust-checkpoint"):
        rbl.run_suite(path)
    assert not marker.exists()


def test_the_caller_grants_trust(tmp_path: Path) -> None:
    path, marker = _suite(tmp_path)
    report = rbl.run_suite(path, trust_checkpoint=True)
    assert report.results[0].id == "clean"
    assert marker.exists(), "granted, the TorchScript archive loads (and runs its code)"


def test_a_model_given_by_the_caller_needs_no_grant(tmp_path: Path, digits_cnn: rbl.Model) -> None:
    path, marker = _suite(tmp_path)
    report = rbl.run_suite(path, digits_cnn)  # the suite's own model is not loaded at all
    assert report.model == digits_cnn.name and not marker.exists()
