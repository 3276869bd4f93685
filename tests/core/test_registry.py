"""Registry: registration rules, strict parameters, lookups with suggestions, plug-in loading."""

from __future__ import annotations

import logging
import sys
import textwrap
import types
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import robustbench_lite as rbl
from robustbench_lite.core import registry as registry_module
from robustbench_lite.core.registry import ATTACKS, Registry


def _fresh() -> Registry[object]:
    return Registry("widget", "robustbench_lite.test-no-such-group")


@dataclass(frozen=True)
class Sprocket:
    steps: int = 10
    step_size: float = 0.1
    mode: str = "fast"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be >= 1")


def test_register_create_and_none_pruning() -> None:
    reg = _fresh()
    assert reg.register("sprocket")(Sprocket) is Sprocket
    assert Sprocket.name == "sprocket"  # type: ignore[attr-defined]
    w = reg.create("sprocket", steps=3, step_size=None)
    assert w == Sprocket(steps=3, step_size=0.1)
    assert [p.name for p in reg.params("sprocket")] == ["steps", "step_size", "mode"]
    assert reg.params("sprocket")[0].default == 10


def test_duplicate_names_raise_unless_replace() -> None:
    reg = _fresh()
    reg.register("sprocket")(Sprocket)
    reg.register("sprocket")(Sprocket)  # the same class again (module re-import) is fine

    @dataclass(frozen=True)
    class Other:
        steps: int = 1

    with pytest.raises(
        rbl.RegistryError, match="already registered by .*Sprocket; pass replace=True"
    ):
        reg.register("sprocket")(Other)
    assert reg.get("sprocket") is Sprocket
    reg.register("sprocket", replace=True)(Other)
    assert reg.get("sprocket") is Other


def test_parameter_docs_come_from_the_args_sections_of_the_docstrings() -> None:
    @dataclass(frozen=True)
    class Base:
        """Base.

        Args:
            steps: gradient steps,
                per restart.
            rate: base text.
        """

        steps: int = 1
        rate: float = 0.1

    @dataclass(frozen=True)
    class Child(Base):
        """Child.

        Args:
            rate, scale: shared text that the child
                continues here.

        Shape: not an argument.
        """

        scale: float = 1.0
        extra: int = 0

    reg = _fresh()
    reg.register("child")(Child)
    docs = {p.name: p.doc for p in reg.params("child")}
    assert docs == {
        "steps": "gradient steps, per restart.",
        "rate": "shared text that the child continues here.",
        "scale": "shared text that the child continues here.",
        "extra": "",
    }


def test_unknown_names_and_parameters_suggest_the_closest() -> None:
    reg = _fresh()
    reg.register("sprocket")(Sprocket)
    reg.register("gear")(Sprocket)
    with pytest.raises(rbl.RegistryError) as info:
        reg.get("sprockett")
    assert "unknown widget 'sprockett'; did you mean sprocket?" in str(info.value)
    assert "list widgets" in str(info.value)
    with pytest.raises(rbl.RegistryError) as info:
        reg.create("sprocket", stepz=3)
    assert str(info.value).startswith("stepz: unknown parameter of sprocket; did you mean steps")
    with pytest.raises(rbl.RegistryError, match="it takes steps, step_size, mode"):
        reg.create("sprocket", zzz=1)
    with pytest.raises(rbl.RegistryError, match="steps=0 must be >= 1"):
        reg.create("sprocket", steps=0)
    assert "gear" in reg and "cog" not in reg


@pytest.mark.parametrize(
    ("param", "value", "kind"),
    [
        ("steps", "abc", "a whole number"),
        ("steps", 2.5, "a whole number"),
        ("steps", True, "a whole number"),
        ("step_size", "0.1", "a number"),
        ("mode", 3, "a string"),
    ],
)
def test_scalar_parameters_of_the_wrong_kind_are_refused(
    param: str, value: object, kind: str
) -> None:
    reg = _fresh()
    reg.register("sprocket")(Sprocket)
    with pytest.raises(rbl.RegistryError) as info:
        reg.create("sprocket", **{param: value})
    default = {"steps": 10, "step_size": 0.1, "mode": "fast"}[param]
    assert (
        str(info.value)
        == f"{param}: sprocket takes {kind}, not {value!r}; e.g. {param}={default!r}"
    )
    assert reg.create("sprocket", steps=3, step_size=1).steps == 3  # an int is a fine float


def test_names_are_sorted_and_filtered_with_fnmatch() -> None:
    reg = _fresh()
    for name in ("pgd_l2", "apgd", "pgd", "fgsm"):
        reg.register(name)(type(name, (), {}))
    assert reg.names() == ["apgd", "fgsm", "pgd", "pgd_l2"]
    assert reg.names("pgd*") == ["pgd", "pgd_l2"]
    assert reg.names("*gd") == ["apgd", "pgd"]
    assert reg.names("x*") == []


def test_builtin_attacks_are_registered_with_contracts() -> None:
    names = rbl.list_attacks()
    assert {"pgd", "fgsm"} <= set(names) and names == sorted(names)
    assert rbl.list_attacks("fg*") == [n for n in names if n.startswith("fg")]
    for name in names:
        cls = ATTACKS.get(name)
        assert issubclass(cls, rbl.Attack) and cls.name == name
        assert cls.supports, f"{name} declares no supported (norm, goal) pairs"
        ATTACKS.check_params(name, cls.quick_params)  # quick_params only name real parameters
    pgd = rbl.create_attack("pgd", steps=5, step_size=None)
    assert pgd.steps == 5 and pgd.step_size is None


def test_a_builtin_name_cannot_be_taken_silently() -> None:
    @dataclass(frozen=True)
    class Fake(rbl.Attack):
        def run(self, model, x, y, threat, *, target, generator):  # type: ignore[no-untyped-def]
            return x

    with pytest.raises(rbl.RegistryError, match="'pgd' is already registered"):
        rbl.register_attack("pgd")(Fake)
    assert ATTACKS.get("pgd").__module__ == "robustbench_lite.attacks.pgd"


def test_plugins_load_through_entry_points_and_broken_ones_are_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "rbl_test_plugin_mod.py").write_text(
        textwrap.dedent("""
        from robustbench_lite.core.registry import Registry
        import rbl_test_registry_holder as holder

        @holder.REG.register("third_party")
        class ThirdParty:
            pass
    """)
    )
    reg = Registry("widget", "rbl.test.group")
    holder = types.ModuleType("rbl_test_registry_holder")
    holder.REG = reg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rbl_test_registry_holder", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        EntryPoint("good", "rbl_test_plugin_mod", "rbl.test.group"),
        EntryPoint("broken", "rbl_no_such_module_xyz", "rbl.test.group"),
    ]
    monkeypatch.setattr(
        registry_module, "entry_points", lambda group: [e for e in eps if e.group == group]
    )
    with caplog.at_level(logging.WARNING, logger="robustbench_lite.core.registry"):
        assert reg.names() == ["third_party"]
    assert any("could not load widget plug-in 'broken'" in r.getMessage() for r in caplog.records)
    assert reg.get("third_party").__name__ == "ThirdParty"
