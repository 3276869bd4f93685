"""The suite dataclasses: Suite, Check, ModelSpec, DataSpec, DefenseSpec (built by load_suite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.verifier import DEFAULT_TIMEOUT_S
from robustbench_lite.suite.expect import Expect


@dataclass(frozen=True)
class ModelSpec:
    """Where the suite's model comes from: ``zoo:NAME``, a checkpoint (+ arch), TorchScript, ONNX."""

    checkpoint: str
    arch: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    #: The suite *asks* for trust (its model is TorchScript or needs full unpickling). It never
    #: grants it: the run is refused unless the caller passes ``trust_checkpoint=True``.
    trust_checkpoint: bool = False
    #: The suite file's folder: ``arch``'s module is looked up there first (as the checkpoint
    #: path is relative to it). None for built-in suites.
    folder: str | None = None
    #: The suite's source, for the record of where bounds etc. came from.
    origin: str = "suite"

    def load(self, *, trust_checkpoint: bool = False) -> Any:
        """The :class:`Model` (see :func:`robustbench_lite.models.loading.open_model`); what the
        block does not give is filled from the data by the runner.

        ``trust_checkpoint`` is the caller's grant (CLI ``--trust-checkpoint``, pytest
        ``--rb-trust-checkpoint``); the suite's own ``trust_checkpoint`` key is not one.
        """
        from robustbench_lite.models.loading import open_model

        return open_model(
            self.checkpoint,
            arch=self.arch,
            trust_checkpoint=trust_checkpoint,
            given_by=self.origin,
            arch_paths=(self.folder,) if self.folder else (),
            **dict(self.options),
        )


@dataclass(frozen=True)
class DataSpec:
    """The samples every check sees: ``source`` (dataset name or ``npz:PATH``; None: the model's
    own data, else digits), split, first n, and the dataset's ``options`` (``size: [56, 46]``)."""

    source: str | None = None
    split: str = "test"
    n: int | None = None
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class DefenseSpec:
    """A named defense of the suite: registry name ``use`` and its parameters."""

    name: str
    use: str
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Check:
    """One check: a kind (clean/attack/verify/detect), its component, threat and expectations.

    ``threat`` is None for clean and detect checks, and for ``threat: default`` (then
    ``model_threats`` is True and the runner makes one check per default threat of the model).
    """

    id: str
    kind: str
    component: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    threat: ThreatModel | None = None
    model_threats: bool = False
    defense: DefenseSpec | None = None
    n: int | None = None
    expect: tuple[Expect, ...] = ()
    line: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def param_dict(self) -> dict[str, Any]:
        """The component parameters as a dict."""
        return dict(self.params)


@dataclass(frozen=True)
class Suite:
    """A validated suite; build it with :func:`load_suite`."""

    name: str
    checks: tuple[Check, ...]
    data: DataSpec = DataSpec()
    model: ModelSpec | None = None
    seed: int = 0
    shard_size: int = 100
    source: str = "<memory>"
    threats: tuple[tuple[str, ThreatModel], ...] = ()
    description: str = ""
    version: int = 1
    defenses: tuple[DefenseSpec, ...] = field(default=())
