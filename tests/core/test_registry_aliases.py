"""Registry aliases: an old name finds the component, listings and results use the canonical one."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.registry import VERIFIERS, Registry


@dataclass(frozen=True)
class Gear:
    teeth: int = 12


@dataclass(frozen=True)
class Cog:
    teeth: int = 8


def _fresh() -> Registry[object]:
    return Registry("widget", "robustbench_lite.test-no-such-group")


def test_an_alias_finds_the_canonical_component() -> None:
    reg = _fresh()
    reg.register("gear", aliases=("cog_wheel", "sprocket"))(Gear)
    assert Gear.name == "gear"  # type: ignore[attr-defined]
    assert reg.get("sprocket") is Gear and reg.get("cog_wheel") is Gear
    assert reg.canonical("sprocket") == "gear" and reg.canonical("gear") == "gear"
    assert reg.canonical("nothing") == "nothing"
    assert reg.create("sprocket", teeth=3) == Gear(teeth=3)
    assert [p.name for p in reg.params("sprocket")] == ["teeth"]
    assert "sprocket" in reg and "nothing" not in reg
    assert reg.aliases("gear") == ["cog_wheel", "sprocket"] and reg.aliases("sprocket") == []
    # listings hold canonical names only; a pattern may match an alias
    assert reg.names() == ["gear"] and reg.names("spr*") == ["gear"] and reg.names("x*") == []


def test_unknown_names_list_the_aliases_and_suggest_them() -> None:
    reg = _fresh()
    reg.register("gear", aliases=("sprocket",))(Gear)
    with pytest.raises(rbl.RegistryError) as err:
        reg.get("sprockett")
    msg = str(err.value)
    assert "did you mean sprocket?" in msg and "available: gear (alias sprocket)" in msg
    with pytest.raises(ParameterError, match="unknown parameter of sprocket"):
        reg.create("sprocket", tooth=3)


def test_aliases_cannot_take_names_or_other_aliases_silently() -> None:
    reg = _fresh()
    reg.register("gear", aliases=("sprocket",))(Gear)
    reg.register("gear", aliases=("sprocket",))(Gear)  # a re-import is fine
    with pytest.raises(rbl.RegistryError, match="alias 'gear' of 'cog' is already a registered"):
        reg.register("cog", aliases=("gear",))(Cog)
    with pytest.raises(rbl.RegistryError, match="'sprocket' is already an alias of 'gear'"):
        reg.register("sprocket")(Cog)
    assert reg.get("sprocket") is Gear
    reg.register("sprocket", replace=True)(Cog)  # a real name takes the alias back
    assert reg.get("sprocket") is Cog and reg.aliases("gear") == []
    reg.add_alias("old_cog", "cog")  # an alias may point ahead of its name's registration
    reg.register("cog")(Cog)
    assert reg.get("old_cog") is Cog


def test_the_verifier_smt_is_an_alias_of_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert VERIFIERS.canonical("smt") == "complete" and "smt" not in rbl.list_verifiers()
    assert VERIFIERS.get("smt") is VERIFIERS.get("complete")
    assert rbl.create_verifier("smt", workers=1) == rbl.create_verifier("complete", workers=1)
    assert main(["list", "verifiers"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "complete (alias smt)" in listed and "smoothing" in listed
    assert main(["list", "verifiers", "smt"]) == 0
    assert capsys.readouterr().out.splitlines() == ["complete (alias smt)"]
