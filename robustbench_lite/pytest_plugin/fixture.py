"""The ``robustness`` pytest fixture object (imported only when a test uses the fixture).

Example::

    @pytest.mark.robustness(seed=0, n=64)
    def test_pgd(robustness, model):
        r = robustness.attack("pgd", model, "digits", "linf:0.1", steps=20)
        assert r.robust_accuracy >= 0.4
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from robustbench_lite.core.types import Inputs, index_inputs, inputs_to
from robustbench_lite.report.model import CheckResult
from robustbench_lite.report.values import result_values

DataArg = tuple[torch.Tensor, torch.Tensor] | str | None


class Robustness:
    """Runs robustness work for one test and records its results in the session report.

    Args:
        session: the plugin's session collector.
        nodeid: the test's node id (prefix of every recorded check id).
        seed: seed of attacks and suites (marker ``seed``, or ``--rb-seed``).
        n: use at most this many samples (marker ``n``; ``--rb-quick`` caps it further).
        budget_s: fail the test when its robustness work takes longer (marker ``budget_s``).
        quick: use each attack's ``quick_params`` (``--rb-quick``).
        device: torch device for attacks and suites (``--rb-device``, e.g. ``cuda``); verifiers
            and detectors run where the model was loaded (the complete verifier works on the CPU).
        trust_checkpoint: let model files load that run code (``--rb-trust-checkpoint``).
    """

    def __init__(
        self,
        session: Any,
        nodeid: str,
        *,
        seed: int = 0,
        n: int | None = None,
        budget_s: float | None = None,
        quick: bool = False,
        device: str | None = None,
        trust_checkpoint: bool = False,
    ) -> None:
        self._session = session
        self.trust_checkpoint = trust_checkpoint
        self.nodeid = nodeid
        self.seed = seed
        self.n = n
        self.budget_s = budget_s
        self.quick = quick
        self.device = device
        self.elapsed_s = 0.0

    # ------------------------------------------------------------ helpers
    def _model(self, model: Any) -> Any:
        from robustbench_lite.models.loading import load_model

        return load_model(model, trust_checkpoint=self.trust_checkpoint)

    def _model_and_data(self, model: Any, data: DataArg) -> tuple[Any, Inputs, torch.Tensor]:
        """The model with its input space completed from the data (as the CLI does: the data
        named, else the model's own, else digits), and the samples, capped by ``n``/quick."""
        from robustbench_lite.core.errors import DataError
        from robustbench_lite.models.domain import load_model_data, resolve_input_space
        from robustbench_lite.suite.runner import QUICK_N

        model = self._model(model)
        if data is None or isinstance(data, str):
            model, x, y, _ = load_model_data(model, data, given_by="data=")
        elif isinstance(data, (tuple, list)) and len(data) == 2:
            x, y = data
            model = resolve_input_space(model, None, x)
        else:
            raise DataError(
                f"data {type(data).__name__}: pass (x, y) tensors or a dataset name such as 'digits'"
            )
        cap = min(self.n or len(y), QUICK_N if self.quick else len(y))
        return model, index_inputs(x, slice(0, cap)), y[:cap]

    def _record(self, result: CheckResult, model: Any) -> None:
        self._session.record([result], model.name)
        self.elapsed_s += result.elapsed_s
        if self.budget_s is not None and self.elapsed_s > self.budget_s:
            pytest.fail(
                f"robustness work took {self.elapsed_s:.1f} s, over the test's budget_s={self.budget_s}",
                pytrace=False,
            )

    # ------------------------------------------------------------ API
    def attack(self, name: str, model: Any, data: DataArg, threat: Any, **params: Any) -> Any:
        """Run attack ``name`` on ``data`` ((x, y) or a dataset name); returns its AttackResult."""
        from robustbench_lite.core.registry import ATTACKS, create_attack
        from robustbench_lite.core.threat import ThreatModel

        if self.quick:
            params = {**params, **ATTACKS.get(name).quick_params}
        attack, threat = create_attack(name, **params), ThreatModel.parse(threat)
        model, x, y = self._model_and_data(model, data)
        if self.device:
            model, x, y = model.to(self.device), inputs_to(x, self.device), y.to(self.device)
        result = attack(model, x, y, threat, seed=self.seed)
        self._record(
            CheckResult(
                id=f"{self.nodeid}::{name}@{threat.name}",
                kind="attack",
                component=name,
                threat=threat.name,
                passed=True,
                values=result_values(result),
                elapsed_s=result.elapsed_s,
                detail={"n": len(y), "params": params, "seed": self.seed},
            ),
            model,
        )
        return result

    def verify(
        self,
        name: str,
        model: Any,
        data: DataArg,
        threat: Any,
        *,
        timeout_s: float | None = None,
        **params: Any,
    ) -> Any:
        """Run verifier ``name`` (``timeout_s`` seconds per sample, default 60); returns its
        VerificationResult."""
        from robustbench_lite.core.registry import create_verifier
        from robustbench_lite.core.threat import ThreatModel
        from robustbench_lite.core.verifier import DEFAULT_TIMEOUT_S

        verifier, threat = create_verifier(name, **params), ThreatModel.parse(threat)
        name = verifier.name  # an alias (``smt``) is recorded by its canonical name
        model, x, y = self._model_and_data(model, data)
        start = time.perf_counter()
        timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        res = verifier.verify(model, x, y, threat, timeout_s=timeout_s)
        self._record(
            CheckResult(
                id=f"{self.nodeid}::{name}@{threat.name}",
                kind="verify",
                component=name,
                threat=threat.name,
                passed=True,
                values=result_values(res),
                elapsed_s=time.perf_counter() - start,
                detail={"n": len(y), "timeout_s": timeout_s},
            ),
            model,
        )
        return res

    def detect(self, name: str, model: Any, data: Any = None, **params: Any) -> Any:
        """Run detector ``name`` on ``model``; returns its Detection."""
        from robustbench_lite.core.registry import create_detector

        detector, model = create_detector(name, **params), self._model(model)
        start = time.perf_counter()
        det = detector.scan(model, data)
        self._record(
            CheckResult(
                id=f"{self.nodeid}::{name}",
                kind="detect",
                component=name,
                threat=None,
                passed=True,
                values=result_values(det),
                elapsed_s=time.perf_counter() - start,
                detail={"threshold": det.threshold, "evidence": dict(det.evidence)},
            ),
            model,
        )
        return det

    def suite(self, path: str | Path, model: Any = None, **kw: Any) -> Any:
        """Run a suite (YAML path or ``builtin:NAME``); returns its Report (all checks recorded)."""
        from dataclasses import replace

        from robustbench_lite.suite.runner import run_suite

        kw.setdefault("quick", self.quick)
        kw.setdefault("seed", self.seed)
        kw.setdefault("trust_checkpoint", self.trust_checkpoint)
        if self.device:
            kw.setdefault("device", self.device)
        if self.n is not None:
            kw.setdefault("n", self.n)
        report = run_suite(path, model, **kw)
        self._session.record(
            [replace(r, id=f"{self.nodeid}::{r.id}") for r in report.results], report.model
        )
        self.elapsed_s += sum(r.elapsed_s for r in report.results)
        return report
