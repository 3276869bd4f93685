"""``rbl.run_suite(suite, model=None, ...) -> Report``: run a suite's checks, resumably.

The run is split into cells (one check on one shard of the data; see runner_cells.py). Cells
run on an executor (``local``, ``process`` or ``ray``), each finished cell is stored at once
when a results database is given, and results merge by sample index, so the report does not
depend on the executor or on how often the run was interrupted and resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from robustbench_lite.core.errors import (
    DataError,
    SuiteError,
    ThreatSpecError,
    UnsupportedThreatError,
)
from robustbench_lite.core.model import Model
from robustbench_lite.core.threat import ThreatModel, require_meaningful_eps, require_supported
from robustbench_lite.core.types import Inputs, batch_size, index_inputs, inputs_device, inputs_to
from robustbench_lite.report.model import CheckResult, Report, environment
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.kinds import check_kind
from robustbench_lite.suite.model_spec import Check, DataSpec
from robustbench_lite.suite.schema import Suite, load_suite

log = logging.getLogger(__name__)
#: ``quick=True`` caps the data at this many samples (and uses each attack's quick_params).
QUICK_N = 100


def run_suite(
    suite: Suite | str | Path,
    model: Model | str | Path | None = None,
    *,
    quick: bool = False,
    seed: int | None = None,
    data: str | None = None,
    n: int | None = None,
    device: str | None = None,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    db: str | Path | None = None,
    fresh: bool = False,
    progress: bool = False,
    trust_checkpoint: bool = False,
) -> Report:
    """Run ``suite`` (a :class:`Suite`, a YAML path or ``builtin:NAME``) and return its Report.

    Args:
        model: a :class:`Model` or a spec for :func:`rbl.load_model`; default: the suite's model.
        quick: at most ``QUICK_N`` samples and each attack's ``quick_params`` (for PR CI).
        seed: overrides the suite's seed. data / n: override the suite's data source / size.
        device: move the model and data there (``"cuda"``); default: where the model is.
        executor: ``local``, ``process`` or ``ray`` (same report from each).
        workers: worker processes (``process``) or CPUs of a local Ray.
        ray_address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None starts one.
        db: SQLite results store; finished cells are kept there and skipped on a re-run.
        fresh: ignore (and drop) the stored cells of this exact run first.
        progress: show a progress bar on stderr (only when stderr is a terminal).
        trust_checkpoint: let the model load run code (full unpickling, TorchScript). The
            caller's decision only: a suite's ``model: {trust_checkpoint: true}`` merely asks
            for it, and the run is refused unless this is True (CLI ``--trust-checkpoint``,
            pytest ``--rb-trust-checkpoint``).
    """
    from robustbench_lite.suite.executors import preflight

    suite = load_suite(suite)
    if model is None:
        require_trust(suite, trust_checkpoint)  # before the store or any model work
    preflight(executor, ray_address)
    if seed is not None:
        suite = replace(suite, seed=seed)
    store = _open_store(db)  # a bad store file fails before any model work
    try:
        return _run(
            suite,
            model,
            store,
            quick=quick,
            data=data,
            n=n,
            device=device,
            executor=executor,
            workers=workers,
            ray_address=ray_address,
            fresh=fresh,
            progress=progress,
            trust_checkpoint=trust_checkpoint,
        )
    finally:
        if store is not None:
            store.close()


def _run(
    suite: Suite,
    model: Model | str | Path | None,
    store: Any,
    *,
    quick: bool,
    data: str | None,
    n: int | None,
    device: str | None,
    executor: str,
    workers: int | None,
    ray_address: str | None,
    fresh: bool,
    progress: bool,
    trust_checkpoint: bool = False,
) -> Report:
    from robustbench_lite.datasets import load_inputs
    from robustbench_lite.models.domain import input_space_record, resolve_input_space
    from robustbench_lite.suite.executors import run_cells

    model = _model(suite, model, device, trust_checkpoint)
    spec = suite.data
    count = n if n is not None else spec.n
    if quick:
        count = min(count or QUICK_N, QUICK_N)
    wanted = needs_data(suite)
    choice = None
    x: Inputs
    if wanted or data is not None or spec != DataSpec():  # detect-only: data only when named
        choice = data_choice(suite, model, data)
        x, y = load_inputs(choice.source, split=spec.split, n=count, **dict(choice.options))
        # what neither the caller nor the file gives comes from the data; no bounds: exit 2
        model = resolve_input_space(model, choice, x)
    else:
        x, y = torch.empty(0), torch.empty(0, dtype=torch.long)
    if device:
        x, y = inputs_to(x, device), y.to(device)
    if wanted:
        model.check_inputs(x)
    checks = resolve_checks(suite, model, n_data=len(y), quick=quick)
    check_budgets(suite, checks, model, x)  # an eps beyond the input range: before any work
    cells = build_cells(checks, len(y), suite.shard_size)
    base_key, keys = run_keys(suite, checks, model, x, y, quick)
    payloads: dict[tuple[str, int], dict[str, Any]] = {}
    if store is not None:
        if fresh:
            store.forget(base_key)
        stored = store.done(base_key)
        payloads = {
            (c.check_id, c.shard): stored[(keys[c.check_id], c.shard)]
            for c in cells
            if (keys[c.check_id], c.shard) in stored
        }
    todo = [c for c in cells if (c.check_id, c.shard) not in payloads]
    stored_cells = set(payloads)
    resumed = len(cells) - len(todo)
    if resumed:
        log.info("resuming: %d of %d cells already stored", resumed, len(cells))
    ctx = CellContext(model=model, x=x, y=y, checks=checks, seed=suite.seed)
    with _progress(progress, len(cells), resumed) as advance:
        for cell, payload in run_cells(executor, ctx, todo, workers=workers, address=ray_address):
            if store is not None:
                store.put(base_key, keys[cell.check_id], cell.shard, payload)
            payloads[(cell.check_id, cell.shard)] = payload
            advance()
    report = assemble(
        suite,
        model,
        checks,
        cells,
        payloads,
        reused=stored_cells,
        env={
            "seed": suite.seed,
            "suite_source": suite.source,
            "executor": executor,
            "quick": quick,
            "device": str(inputs_device(x)),
            "data": choice.source if choice is not None and len(y) else None,
            "data_options": choice.record()["options"] if choice is not None else {},
            "data_chosen_by": choice.chosen_by if choice is not None else None,
            "model_domain": input_space_record(model),
            "n": len(y),
            "run_key": base_key,
            "cells": len(cells),
            "cells_resumed": resumed,
        },
    )
    if store is not None:
        store.record_run(
            base_key,
            report,
            fingerprint=model_fingerprint(model),
            seed=suite.seed,
            run=len(todo),
            resumed=resumed,
        )
    return report


def needs_data(suite: Suite) -> bool:
    """Whether some check of ``suite`` reads the data (a suite of detect checks reads none)."""
    return any(check_kind(check.kind).needs_data for check in suite.checks)


def check_budgets(suite: Suite, checks: dict[str, Check], model: Model, x: Inputs) -> None:
    """Refuse a check whose eps covers the model's whole input range (see
    :func:`robustbench_lite.core.threat.require_meaningful_eps`), naming the check's line."""
    if not batch_size(x):
        return
    for check in checks.values():
        if check.threat is None:
            continue
        try:
            require_meaningful_eps(check.threat, model.bounds, index_inputs(x, slice(0, 1)))
        except ThreatSpecError as exc:
            raise ThreatSpecError(f"{suite.source}:{check.line} check {check.id}: {exc}") from None


def data_choice(suite: Suite, model: Model, data: str | None = None) -> Any:
    """The run's data: ``data`` (``--data``), else the suite's ``data:`` source, else the
    model's own data (a zoo entry's, a checkpoint's ``rbl_meta``), else digits."""
    from robustbench_lite.models.domain import choose_data

    if data:
        return choose_data(model, data, given_by="--data")
    spec = suite.data
    return choose_data(
        model, spec.source, given_by=f"{suite.source} data", options=dict(spec.options)
    )


def require_trust(suite: Suite, trust_checkpoint: bool) -> None:
    """Refuse a suite whose model asks for ``trust_checkpoint`` the caller did not grant."""
    if suite.model is not None and suite.model.trust_checkpoint and not trust_checkpoint:
        raise SuiteError(
            f"{suite.source}: the suite's model {suite.model.checkpoint} asks for "
            "trust_checkpoint (loading it can run code), which a suite cannot grant; if you "
            "trust the file, pass --trust-checkpoint (pytest: --rb-trust-checkpoint, Python: "
            "run_suite(..., trust_checkpoint=True))"
        )


def _model(
    suite: Suite,
    model: Model | str | Path | None,
    device: str | None,
    trust_checkpoint: bool = False,
) -> Model:
    from robustbench_lite.models.loading import open_model

    if model is None:
        if suite.model is None:
            raise SuiteError(
                f"{suite.source}: the suite names no model; pass one (CLI: --model SPEC)"
            )
        require_trust(suite, trust_checkpoint)
        loaded: Model = suite.model.load(trust_checkpoint=trust_checkpoint)
    elif isinstance(model, Model):
        loaded = model
    else:
        loaded = open_model(model, trust_checkpoint=trust_checkpoint)
    return loaded.to(device) if device else loaded


def resolve_checks(
    suite: Suite, model: Model, *, n_data: int, quick: bool = False
) -> dict[str, Check]:
    """Checks by id, with ``threat: default`` expanded over the model's default threats."""
    out: dict[str, Check] = {}
    for check in suite.checks:
        if check.n is not None and check.n > n_data and check_kind(check.kind).needs_data:
            raise DataError(
                f"{suite.source}:{check.line} check {check.id}: n={check.n} is more than the "
                f"{n_data} samples of the data; lower n"
            )
        if quick:
            check = check_kind(check.kind).quick(check)
        if not check.model_threats:
            out[check.id] = check
            continue
        if not model.default_threats:
            raise SuiteError(_no_default_threats(suite, check, model))
        for spec in model.default_threats:
            threat = ThreatModel.parse(spec)
            _supported(check, threat, suite.source)
            expanded = replace(
                check, id=f"{check.id}@{threat.name}", threat=threat, model_threats=False
            )
            out[expanded.id] = expanded
    return out


def _no_default_threats(suite: Suite, check: Check, model: Model) -> str:
    """The one line for ``threat: default`` on a model and data without default threats."""
    data = (model.meta.get("input_space") or {}).get("data", {}).get("source")
    whose = f"{model.name} and its data {data}" if data else model.name
    fix = "name one with --threat SPEC, e.g. --threat linf:0.1"
    if suite.source.startswith("builtin:"):  # evaluate: the user wrote no suite, only a command
        return f"{whose} declare no default threats; {fix}"
    return (
        f"{suite.source}:{check.line} check {check.id} uses 'threat: default' but {whose} "
        f"declare no default threats; name a threat in the check, or {fix} (evaluate)"
    )


def _supported(check: Check, threat: ThreatModel, source: str) -> None:
    registry = check_kind(check.kind).components()
    if registry is None or check.component is None:
        return
    supports = getattr(registry.get(check.component), "supports", None)
    try:
        require_supported(check.kind, check.component, supports, threat)
    except UnsupportedThreatError:
        raise UnsupportedThreatError(
            f"{source}:{check.line} check {check.id}: {check.component} does not "
            f"support the model's default threat {threat.name}"
        ) from None


def build_cells(checks: dict[str, Check], n_data: int, shard_size: int) -> list[Cell]:
    """One cell per shard of each check's samples (detect checks: one cell on all data)."""
    cells = []
    for check in checks.values():
        n = min(check.n or n_data, n_data)
        if not check_kind(check.kind).sharded:
            cells.append(Cell(check.id, 0, 0, n))
            continue
        for shard, start in enumerate(range(0, n, shard_size)):
            cells.append(Cell(check.id, shard, start, min(start + shard_size, n)))
    return cells


def model_fingerprint(model: Model) -> str:
    """SHA-256 of the model's weights, input space and class (identifies it in the store)."""
    h = hashlib.sha256(type(model.net).__qualname__.encode())
    h.update(repr((model.bounds, model.mean, model.std, model.default_threats)).encode())
    for key, value in sorted(model.net.state_dict().items()):
        h.update(key.encode())
        h.update(  # reshape: a 0-dim buffer (a TorchScript scalar) cannot be viewed as bytes
            value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            if value.numel()
            else b""
        )
    return h.hexdigest()


def run_keys(
    suite: Suite,
    checks: dict[str, Check],
    model: Model,
    x: Inputs,
    y: torch.Tensor,
    quick: bool,
) -> tuple[str, dict[str, str]]:
    """The run key (model, data, seed, sharding, version) and a key per check (what it computes).
    Mapping inputs hash every entry with its name and shape, in sorted key order."""
    from robustbench_lite.core.version import __version__

    if isinstance(x, torch.Tensor):
        data = hashlib.sha256(_raw(x))
    else:
        data = hashlib.sha256(b"mapping")
        for name in sorted(x):
            data.update(f"\0{name}\0{tuple(x[name].shape)}\0{x[name].dtype}\0".encode())
            data.update(_raw(x[name]))
    data.update(y.detach().cpu().numpy().tobytes())
    base = json.dumps(
        [model_fingerprint(model), data.hexdigest(), suite.seed, suite.shard_size, __version__]
    )
    keys = {}
    for cid, c in checks.items():
        work = repr(
            (c.id, c.kind, c.component, c.params, c.threat, c.defense, c.n, c.timeout_s, quick)
        )
        keys[cid] = f"{cid}#{hashlib.sha256(work.encode()).hexdigest()[:16]}"
    return hashlib.sha256(base.encode()).hexdigest()[:32], keys


def _raw(t: torch.Tensor) -> bytes:
    """The bytes of ``t``'s values (on the CPU, contiguous)."""
    return bytes(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def assemble(
    suite: Suite,
    model: Model,
    checks: dict[str, Check],
    cells: list[Cell],
    payloads: dict[tuple[str, int], dict[str, Any]],
    env: dict[str, Any],
    reused: Collection[tuple[str, int]] = (),
) -> Report:
    """Merge cell payloads into the report (check order of the suite) and cross-check soundness.
    A check whose cells are all in ``reused`` (check id, shard) is marked ``reused``."""
    from robustbench_lite.suite.merge import cross_check, merge_check

    results: list[CheckResult] = []
    for cid, check in checks.items():
        mine = [(c, payloads[(c.check_id, c.shard)]) for c in cells if c.check_id == cid]
        whole = bool(mine) and all((c.check_id, c.shard) in reused for c, _ in mine)
        results.append(merge_check(check, mine, reused=whole))
    results = cross_check(checks, results)
    return Report(
        suite=suite.name, model=model.name, results=tuple(results), env=environment(**env)
    )


class _progress:
    """A rich progress bar on stderr when it is a terminal; otherwise silent."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled = enabled and sys.stderr.isatty() and total > done
        self.total, self.done = total, done

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("cells", total=self.total, completed=self.done)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()


def _open_store(db: str | Path | None) -> Any:
    if db is None:
        return None
    from robustbench_lite.suite.store import ResultStore

    return ResultStore(db)
