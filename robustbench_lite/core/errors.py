"""The error hierarchy. Every message names the bad value and says how to fix it.

The CLI turns any :class:`RobustbenchLiteError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RobustbenchLiteError(Exception):
    """Base class of every error this package raises on purpose (bad input or configuration)."""


class RegistryError(RobustbenchLiteError, KeyError):
    """Unknown component name or parameter."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParameterError(RegistryError, ValueError):
    """One parameter a component does not take, or a value of the wrong kind: ``PARAM: REASON``."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param, self.reason = param, reason


class ThreatSpecError(RobustbenchLiteError, ValueError):
    """A malformed threat specification (``"linf:8/255"``, ``{norm: l2, eps: 0.5}``)."""


class UnsupportedThreatError(RobustbenchLiteError, ValueError):
    """A component asked to work under a threat it does not support."""


class UnsupportedLayerError(RobustbenchLiteError, TypeError):
    """A verifier met a layer type it has no encoder for."""


class CheckpointError(RobustbenchLiteError, ValueError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit the architecture."""


class DataError(RobustbenchLiteError, ValueError):
    """Data that is missing, malformed, or does not fit the model."""


class DataFolderMissing(DataError):
    """A dataset that lives in the data folder (``RBL_DATA_DIR``) is not there."""


class PrivateDataLeak(DataError):
    """Private images were about to be used where only public ones are allowed."""


class VocabularyError(DataError):
    """A vocabulary that is malformed (duplicate tokens, missing pad/unk, bad JSON, ...)."""


class VnnlibError(RobustbenchLiteError, ValueError):
    """A VNNLIB file that cannot be parsed; the message carries ``file:line``."""


class ModelSplitError(RobustbenchLiteError, TypeError):
    """The model cannot be split into a feature extractor and a linear head."""


class QPInfeasibleError(RobustbenchLiteError, ValueError):
    """The ordered top-K polyhedron is empty for the given head, targets and margin."""


class EvaluatorIsTarget(RobustbenchLiteError, ValueError):
    """The evaluation classifier is the target model (that would measure overfitting, not leakage)."""


class FoolboxUnavailable(RobustbenchLiteError):
    """foolbox is not installed or fails to import; only the ``fb_*`` attacks are affected."""


class ModelOutputError(RobustbenchLiteError, ValueError):
    """The model produced NaN/inf logits or an output of the wrong shape."""


class SuiteError(RobustbenchLiteError, ValueError):
    """A suite file that does not follow the schema (message carries path and line)."""


class RecipeError(RobustbenchLiteError, ValueError):
    """A training recipe that does not follow its schema (message carries file, line, key)."""


class ExecutorError(RobustbenchLiteError):
    """An executor cannot start (Ray missing or unreachable, model not picklable, ...)."""


class StoreError(RobustbenchLiteError):
    """The results database is unreadable, corrupted, or not a robustbench_lite store."""


class OutputPathError(RobustbenchLiteError, OSError):
    """A file cannot be written where asked (a device, FIFO, folder, dangling link, or the write
    failed). Also an ``OSError``, so callers that catch write failures keep working."""


class ExpectationFailed(RobustbenchLiteError):
    """An expectation of a check was not met (CLI exit code 1, not 2)."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name when it has none (for one-line
    errors that quote a library's exception)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """``"; did you mean x, y?"`` for the closest ``choices``, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""
