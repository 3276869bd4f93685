"""The ``smoothing`` verifier (Cohen et al. 2019, CERTIFY): verdicts against the exact radius of a
linear classifier, abstention, certificates checked against SmoothAdv on a noise-trained net
(judged by PREDICT), and the suite check with its certified-accuracy values and figure."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from robustbench_lite.defenses.smoothing import smooth, smooth_adv_l2
from torch import nn
from torch.nn import functional as F

import robustbench_lite as rbl
from robustbench_lite import Status
from robustbench_lite.core.errors import ParameterError, UnsupportedThreatError
from robustbench_lite.core.smoothing import ABSTAIN
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.report.certified import certified_accuracy
from robustbench_lite.report.html import to_html
from robustbench_lite.report.model import CheckResult
from robustbench_lite.report.values import result_values
from robustbench_lite.suite.kinds import check_kind
from robustbench_lite.suite.model_spec import Check

pytestmark = pytest.mark.usefixtures("one_thread")
SIGMA = 0.25


def half_plane() -> rbl.Model:
    """Class 0 when x0 > 0, else 1: the smoothed classifier is the same, exact radius |x0|."""
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        lin.bias.zero_()
    return rbl.Model(lin, bounds=(-3.0, 3.0), input_shape=(2,), num_classes=2, name="half-plane")


@pytest.fixture(scope="module")
def noisy_mlp() -> rbl.Model:
    """A 64-64-10 MLP trained on digits under N(0, 0.25^2) noise (the paper's base classifier)."""
    x, y = rbl.load_data("digits", split="train")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(20):
            for idx in torch.randperm(len(y)).split(128):
                loss = F.cross_entropy(net(x[idx] + SIGMA * torch.randn_like(x[idx])), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return rbl.Model(net.eval(), input_shape=(1, 8, 8), num_classes=10, name="noisy-mlp")


def test_verdicts_follow_the_certified_radius_and_eps() -> None:
    x = torch.tensor([[0.3, 0.0], [-0.9, 1.0], [0.6, -0.5], [0.0, 0.2]])
    y = torch.tensor([0, 1, 1, 0])
    verifier = rbl.create_verifier("smoothing", sigma=0.5, n=4000, radii=[0.1, 0.5])
    res = verifier.verify(half_plane(), x, y, "l2:0.2")
    radius, pred = res.stats["radius"], res.stats["prediction"]
    assert pred == [0, 1, 0, ABSTAIN]
    assert 0.2 < radius[0] < 0.3 and 0.7 < radius[1] < 0.9 and radius[3] == 0.0
    assert res.per_sample == (Status.VERIFIED, Status.VERIFIED, Status.UNKNOWN, Status.UNKNOWN)
    assert "not the label 1" in res.reasons[2] and "abstained" in res.reasons[3]
    values = result_values(res)
    assert values["certified_accuracy"] == values["verified_fraction"] == 0.5
    assert values["certified_accuracy@0.1"] == 0.5 and values["certified_accuracy@0.5"] == 0.25
    assert values["abstain_fraction"] == 0.25
    tight = verifier.verify(half_plane(), x[:1], y[:1], "l2:0.29")
    assert tight.per_sample == (Status.UNKNOWN,) and "<= eps 0.29" in tight.reasons[0]


def test_a_sample_gets_the_same_certificate_alone_or_in_a_batch() -> None:
    x = torch.tensor([[0.3, 0.0], [-0.5, 1.0], [0.2, 0.4]])
    y = torch.tensor([0, 1, 0])
    verifier = rbl.create_verifier("smoothing", sigma=0.5, n=500)
    batch = verifier.verify(half_plane(), x, y, "l2:0.1").stats["radius"]
    alone = verifier.verify(half_plane(), x[1:2], y[1:2], "l2:0.1").stats["radius"]
    assert alone == batch[1:2]


def test_threats_and_settings_it_cannot_take_are_refused() -> None:
    verifier = rbl.create_verifier("smoothing")
    x, y = torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)
    with pytest.raises(UnsupportedThreatError, match="supports l2/untargeted"):
        verifier.verify(half_plane(), x, y, "linf:0.1")
    for bad in ({"radii": [0.5, -1.0]}, {"n0": 0}, {"alpha": 0.0}, {"sigma": -0.1}):
        with pytest.raises(ParameterError) as info:
            rbl.create_verifier("smoothing", **bad)
        assert info.value.param == next(iter(bad))


def test_smoothadv_never_breaks_a_certificate_but_breaks_beyond_it(noisy_mlp: rbl.Model) -> None:
    x, y = rbl.load_data("digits", split="test", n=24)
    res = rbl.create_verifier("smoothing", sigma=SIGMA, n0=100, n=2000).verify(
        noisy_mlp, x, y, "l2:0"
    )
    cert = [i for i, s in enumerate(res.per_sample) if s is Status.VERIFIED]
    assert len(cert) >= 16, "the noise-trained MLP certifies most digits"
    idx = torch.tensor(cert)
    radius = torch.tensor([res.stats["radius"][i] for i in cert])
    g = smooth(noisy_mlp, SIGMA, n=2000, alpha=0.001, seed=1)
    xs, ys = x[idx], y[idx]
    inside = smooth_adv_l2(g, xs, ys, eps=0.98 * radius, steps=20, m=64)
    assert bool(((inside - xs).flatten(1).norm(dim=1) <= radius).all())
    for _ in range(3):  # PREDICT over fresh draws: a certified class never loses to another
        pred = g.predict(inside)
        assert not bool(((pred != ys) & (pred != ABSTAIN)).any()), "a certificate was broken"
    # the attack is real: it lowers the votes for the label inside the radius ...
    before, after = g.counts(xs), g.counts(inside)
    assert float(after[torch.arange(len(ys)), ys].float().mean()) < float(
        before[torch.arange(len(ys)), ys].float().mean()
    )
    # ... and 0.5 beyond it, it changes the smoothed prediction of most certified digits
    outside = smooth_adv_l2(g, xs, ys, eps=radius + 0.5, steps=20, m=64)
    pred = g.predict(outside)
    assert int(((pred != ys) & (pred != ABSTAIN)).sum()) >= 3 * len(cert) // 4  # measured: 23/24


def test_suite_check_reports_certified_accuracy_at_radii_and_draws_the_figure(
    tmp_path: Path,
) -> None:
    body = """\
        version: 1
        name: smoothing
        seed: 0
        shard_size: 3
        model: {checkpoint: zoo:digits-cnn}
        data: {source: digits, n: 6}
        checks:
          - id: rs
            verify: smoothing
            params: {sigma: 0.1, n0: 20, n: 200, radii: [0.05, 0.1]}
            threat: "l2:0.05"
            expect: {certified_accuracy: ">= 0", abstain_fraction: "<= 1"}
          - id: rs-default-n
            verify: smoothing
            params: {sigma: 0.1, n0: 20}
            threat: "l2:0.05"
            expect: {}
          - id: pgd-base
            attack: pgd
            params: {steps: 10}
            threat: "l2:0.05"
            expect: {}
    """
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(body))
    report = rbl.run_suite(path, quick=True)
    rs = report.results[0]
    # --quick takes a tenth of the default draws, and keeps a smaller n the check sets
    assert rs.detail["n"] == 200 and report.results[1].detail["n"] == 1000
    detail, values = rs.detail, rs.values
    assert len(detail["radius"]) == len(detail["correct"]) == 6
    for r in (0.05, 0.1):
        want = certified_accuracy(detail["correct"], detail["radius"], r)
        assert values[f"certified_accuracy@{r:g}"] == want
    assert (
        values["certified_accuracy"]
        == values["verified_fraction"]
        == values["certified_accuracy@0.05"]
    )
    # the same certificates as the verifier called directly (noise is seeded per sample)
    x, y = rbl.load_data("digits", split="test", n=6)
    direct = rbl.create_verifier("smoothing", sigma=0.1, n0=20, n=200).verify(
        rbl.load_model("zoo:digits-cnn"), x, y, "l2:0.05"
    )
    assert direct.stats["radius"] == pytest.approx(detail["radius"])
    # certificates about the smoothed classifier are not refuted by attacks on the model
    assert rs.passed and values["soundness_violations"] == 0
    page = to_html(report)
    assert "Certified accuracy against radius" in page


def test_attacks_on_the_model_do_not_refute_certificates_of_the_smoothed_classifier() -> None:
    threat = ThreatModel.parse("l2:0.5")
    attack = Check(id="pgd", kind="attack", component="pgd", threat=threat)
    broken = CheckResult("pgd", "attack", "pgd", "l2:0.5", True, {}, detail={"success": [True]})
    for verifier, refuted in (("smoothing", False), ("complete", True)):
        check = Check(id="v", kind="verify", component=verifier, threat=threat)
        proven = CheckResult(
            "v", "verify", verifier, "l2:0.5", True, {}, detail={"status": ["verified"]}
        )
        out = check_kind("verify").cross_check({"v": check, "pgd": attack}, [proven, broken])
        assert out[0].passed is not refuted
