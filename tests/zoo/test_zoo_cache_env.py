"""Issue 21: a cache that cannot be written (RBL_CACHE_DIR or HOME a file, a read-only place)
never loses a trained zoo model: it is kept in memory with one warning naming RBL_CACHE_DIR,
and the run goes on; only a results store that must live there is refused (exit 2)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from torch import nn

import robustbench_lite as rbl
from robustbench_lite import zoo
from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.core.io import cache_dir

TINY = "test-cache-env-tiny"
TRAINED: list[int] = []


def _train(net: nn.Module) -> dict[str, float]:
    TRAINED.append(1)
    return {"clean_accuracy": 1.0}


ENTRY = zoo.ZooEntry(
    name=TINY,
    description="a linear layer for cache tests",
    build=lambda: nn.Linear(4, 2),
    train=_train,
    recipe={"arch": "linear-4-2", "seed": 0, "test": "cache-env"},
    model_kwargs={"input_shape": (4,), "num_classes": 2},
)


@pytest.fixture()
def tiny(monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny entry in the zoo for one test only (other tests list the zoo)."""
    zoo.zoo_names()  # load the built-in entries first
    monkeypatch.setitem(zoo.ZOO._items, TINY, ENTRY)
    return TINY


@pytest.fixture()
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("not a folder")
    return path


def _unwritable_envs(afile: Path) -> dict[str, dict[str, str | None]]:
    return {
        "RBL_CACHE_DIR a file": {"RBL_CACHE_DIR": str(afile)},
        "RBL_CACHE_DIR under a file": {"RBL_CACHE_DIR": str(afile / "cache")},
        "HOME a file": {"RBL_CACHE_DIR": None, "XDG_CACHE_HOME": None, "HOME": str(afile)},
        "XDG_CACHE_HOME a file": {"RBL_CACHE_DIR": None, "XDG_CACHE_HOME": str(afile)},
        "read-only place": {"RBL_CACHE_DIR": "/proc/rbl-no-cache-here"},
    }


def _setenv(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None]) -> None:
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    "case",
    [
        "RBL_CACHE_DIR a file",
        "RBL_CACHE_DIR under a file",
        "HOME a file",
        "XDG_CACHE_HOME a file",
        "read-only place",
    ],
)
def test_an_unwritable_cache_keeps_the_model_in_memory_and_warns_once(
    tiny: str,
    case: str,
    afile: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _setenv(monkeypatch, _unwritable_envs(afile)[case])
    monkeypatch.setattr(zoo, "_WARNED", set())
    TRAINED.clear()
    with caplog.at_level(logging.WARNING, logger="robustbench_lite.zoo"):
        first = rbl.load_model(f"zoo:{TINY}")
        second = rbl.load_model(f"zoo:{TINY}")
    assert first.name == second.name == f"zoo:{TINY}" and len(TRAINED) == 2  # never cached
    warnings = [r for r in caplog.records if r.name == "robustbench_lite.zoo"]
    assert len(warnings) == 1 and "RBL_CACHE_DIR" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert afile.read_text() == "not a folder"
    assert zoo.cached_info(TINY) is None


def test_cache_dir_names_rbl_cache_dir_when_it_cannot_be_a_folder(
    afile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for case in ("RBL_CACHE_DIR a file", "HOME a file", "RBL_CACHE_DIR under a file"):
        _setenv(monkeypatch, _unwritable_envs(afile)[case])
        with pytest.raises(RobustbenchLiteError) as info:
            cache_dir()
        assert "RBL_CACHE_DIR" in str(info.value) and str(afile) in str(info.value)
    monkeypatch.setenv("RBL_CACHE_DIR", str(afile.parent / "fine"))
    assert cache_dir() == afile.parent / "fine"  # computed only: nothing is created
    assert not (afile.parent / "fine").exists()


SUITE = """\
version: 1
name: cache-env
model: {checkpoint: zoo:digits-mlp}
data: {source: digits, n: 10}
checks:
  - {id: clean, expect: {clean_accuracy: ">= 0.5"}}
"""


def test_cli_runs_with_no_db_and_refuses_a_store_in_the_cache(
    tmp_path: Path, afile: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    monkeypatch.setenv("RBL_CACHE_DIR", str(afile))
    monkeypatch.setattr(zoo, "_WARNED", set())
    assert main(["run", str(suite), "--no-db", "-q"]) == 0  # trained in memory, run succeeds
    assert main(["run", str(suite), "-q"]) == 2  # the default store would live in the cache
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RBL_CACHE_DIR" in err, err
    assert afile.read_text() == "not a folder"
