"""Attack zoo: APGD, Square, FMN, the foolbox adapter and the `standard` ensemble."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from robustbench_lite.attacks.standard import MEMBERS, scaled
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.report.values import result_values


def _linear_model(n_in: int = 20, n_cls: int = 5) -> tuple[rbl.Model, torch.Tensor, torch.Tensor]:
    """A seeded linear classifier on wide bounds (the box never binds) and 64 inputs."""
    gen = torch.Generator().manual_seed(0)
    net = nn.Linear(n_in, n_cls)
    with torch.no_grad():
        net.weight.copy_(torch.randn(n_cls, n_in, generator=gen))
        net.bias.copy_(torch.randn(n_cls, generator=gen))
    model = rbl.Model(net=net, bounds=(-100.0, 100.0), input_shape=(n_in,), num_classes=n_cls)
    x = torch.randn(64, n_in, generator=gen)
    return model, x, model.logits(x).argmax(dim=1)


def _closed_form_distance(
    model: rbl.Model, x: torch.Tensor, y: torch.Tensor, dual: float
) -> torch.Tensor:
    """Exact minimum distance to the decision boundary of a linear model: min_j margin / ||w_y - w_j||_dual."""
    w = model.net.weight.detach()
    z = model.logits(x)
    gaps = z.gather(1, y[:, None]) - z
    dists = gaps / (w[y][:, None, :] - w[None]).norm(p=dual, dim=2)
    return dists.scatter(1, y[:, None], float("inf")).amin(dim=1)


@pytest.mark.parametrize("norm,dual", [("l2", 2), ("linf", 1)])
def test_fmn_finds_near_minimal_perturbations_on_a_linear_model(norm: str, dual: float) -> None:
    model, x, y = _linear_model()
    result = rbl.create_attack("fmn", steps=100)(model, x, y, f"{norm}:200")  # the box is 200 wide
    assert result.success.all()
    ratio = (
        rbl.ThreatModel.parse(f"{norm}:1").distance(x, result.x_adv)
        / _closed_form_distance(model, x, y, dual).double()
    )
    assert ratio.min() >= 1 - 1e-3  # nothing closer than the exact boundary can be adversarial
    assert float(ratio.median()) < 1.02 and float(ratio.max()) < 1.2


def test_deepfool_adapter_is_near_minimal_on_a_linear_model() -> None:
    model, x, y = _linear_model()
    result = rbl.create_attack("fb_deepfool", steps=10)(model, x, y, "l2:200")
    assert result.success.all()
    ratio = (
        result.x_adv.sub(x).norm(dim=1).double() / _closed_form_distance(model, x, y, 2).double()
    )
    assert float(ratio.median()) < 1.1


class _CountingNet(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.rows = net, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.net(x)


@pytest.mark.parametrize("threat", ["linf:0.05", "l2:0.5"])
def test_square_respects_its_query_budget(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor], threat: str
) -> None:
    x, y = digits[0][:32], digits[1][:32]
    counter = _CountingNet(digits_cnn.net)
    model = rbl.Model(net=counter, input_shape=(1, 8, 8), num_classes=10)
    result = rbl.create_attack("square", n_queries=60)(model, x, y, threat)
    assert (
        result.metrics["queries_max"] <= 60 and result.queries is not None and result.queries <= 60
    )
    # everything the model saw: the base class' two checks (2 * N rows) plus square's own queries
    assert counter.rows <= 60 * len(y) + 2 * len(y)
    assert counter.rows > 2 * len(y)


@pytest.mark.parametrize("name", ["apgd_ce", "apgd_t", "apgd_dlr", "fmn", "square"])
def test_targeted_attacks_reach_the_target(
    name: str, digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:24], digits[1][:24]
    params = {"n_queries": 300} if name == "square" else {"steps": 25}
    result = rbl.create_attack(name, **params)(digits_cnn, x, y, "l2:2.5:targeted", seed=1)
    assert result.target is not None and result.adv_pred is not None
    hit = result.success & result.clean_correct
    assert (result.adv_pred[hit] == result.target[hit]).all()
    assert float(hit.float().sum() / result.clean_correct.sum()) >= 0.8


def test_apgd_t_at_least_as_strong_as_apgd_ce_on_the_robust_model(
    digits: tuple[torch.Tensor, torch.Tensor],
) -> None:
    model = rbl.load_model("zoo:digits-cnn-at")
    x, y = digits[0][:60], digits[1][:60]
    ce = rbl.create_attack("apgd_ce", steps=20)(model, x, y, "linf:0.2")
    t = rbl.create_attack("apgd_t", steps=20, n_targets=3)(model, x, y, "linf:0.2")
    assert 0.0 <= ce.metrics["loss_not_increased"] <= 1.0
    assert t.robust_accuracy <= ce.robust_accuracy + 0.02


def test_standard_is_never_weaker_than_its_members(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:24], digits[1][:24]
    scale = 0.05
    ens = rbl.create_attack("standard", scale=scale)(digits_cnn, x, y, "linf:0.1", seed=0)
    counts = {name: ens.metrics[f"broken_by_{name}"] for name, _ in MEMBERS}
    assert sum(counts.values()) + ens.metrics["broken_clean"] == int(ens.success.sum())
    for name, params in MEMBERS:
        alone = rbl.create_attack(name, **scaled(params, scale))(
            digits_cnn, x, y, "linf:0.1", seed=0
        )
        assert ens.robust_accuracy <= alone.robust_accuracy, name
        if name == MEMBERS[0][0]:  # the first member sees the same samples and random stream
            assert bool((ens.success | ~alone.success).all())


class _Quantised(nn.Module):
    """Rounds inputs to 4 levels before the network: zero gradient everywhere (masking)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 3) / 3)


def test_standard_warns_when_only_the_black_box_member_breaks_samples(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = rbl.Model(net=_Quantised(digits_cnn.net), input_shape=(1, 8, 8), num_classes=10)
    x, y = digits[0][:24], digits[1][:24]
    result = rbl.create_attack("standard", scale=0.1)(model, x, y, "linf:0.2", seed=0)
    assert result.metrics["broken_by_square"] > 0
    assert (
        result.metrics["warning"] is True and "gradient masking" in result.metrics["warning_text"]
    )
    assert result_values(result)["warning"] is True


def test_broken_foolbox_disables_only_the_fb_attacks(
    monkeypatch: pytest.MonkeyPatch, tiny_mlp: rbl.Model
) -> None:
    monkeypatch.setitem(sys.modules, "foolbox", None)  # makes `import foolbox` raise ImportError
    x = torch.rand(8, 2, generator=torch.Generator().manual_seed(0))
    y = tiny_mlp.logits(x).argmax(dim=1)
    with pytest.raises(
        rbl.RobustbenchLiteError, match="foolbox could not be imported.*pip install"
    ):
        rbl.create_attack("fb_deepfool")(tiny_mlp, x, y, "l2:0.5")
    assert rbl.create_attack("apgd_ce", steps=5)(tiny_mlp, x, y, "l2:0.5").success.shape == (8,)


def test_loading_the_attack_zoo_does_not_import_foolbox() -> None:
    code = (
        "import sys, robustbench_lite as rbl; names = rbl.list_attacks(); "
        "assert {'apgd_ce', 'apgd_t', 'square', 'fmn', 'standard', 'fb_cw_l2'} <= set(names), names; "
        "print('foolbox' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["apgd_ce", "square", "fmn", "standard"])
def test_attacks_reject_bad_parameters_with_registry_errors(name: str) -> None:
    param = {"apgd_ce": "steps", "square": "n_queries", "fmn": "steps", "standard": "scale"}[name]
    with pytest.raises(rbl.RegistryError, match=rf"^{param}: 0 must"):
        rbl.create_attack(name, **{param: 0})
