"""Model inversion (mi_face, gmi, lomma): bounds, independent evaluator, no private leak, seeds.

Everything runs on the digits setting with tiny budgets: a 20-step, width-8 GAN prior and
2-epoch students (cached in the session's zoo cache), and a few dozen latent steps.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import data_dir_or_skip
from robustbench_lite.attacks import _inversion_eval as ev
from robustbench_lite.attacks import _inversion_prior as prior_mod
from robustbench_lite.attacks import lomma as lomma_mod

import robustbench_lite as rbl
from robustbench_lite.core.errors import EvaluatorIsTarget, PrivateDataLeak
from robustbench_lite.zoo import inversion as zoo_inv
from robustbench_lite.zoo import inversion_setting as st

TINY_GAN = {"gan_steps": 20, "gan_width": 8}
THREAT = "none:targeted"


@pytest.fixture(scope="module")
def target() -> rbl.Model:
    return rbl.load_model("zoo:digits-private-target")


@pytest.fixture(scope="module")
def digits() -> st.InversionSetting:
    return st.get_setting("digits")


def _classes() -> torch.Tensor:
    return torch.arange(5)


def _attack(name: str, **kw: object) -> rbl.Attack:
    params = {
        "mi_face": {"max_iter": 60, "patience": 10},
        "gmi": {"iterations": 30, "restarts": 2, **TINY_GAN},
        "lomma": {"iterations": 30, "restarts": 2, "student_epochs": 2, **TINY_GAN},
    }[name]
    return rbl.create_attack(name, **{**params, **kw})


# ---------------------------------------------------------------- settings and bookkeeping
def test_settings_split_classes_and_indices(digits: st.InversionSetting) -> None:
    pub, priv_tr, priv_te = (
        digits.public_indices(),
        digits.private_indices("train"),
        digits.private_indices("test"),
    )
    _, y, is_train = digits.pool()
    assert not set(pub.tolist()) & (set(priv_tr.tolist()) | set(priv_te.tolist()))
    assert set(y[pub].tolist()) == {5, 6, 7, 8, 9} and set(y[priv_tr].tolist()) == {0, 1, 2, 3, 4}
    assert bool(is_train[priv_tr].all()) and not bool(is_train[priv_te].any())
    assert len(pub) + len(priv_tr) + len(priv_te) == len(y)
    for name, setting in st.SETTINGS.items():
        assert zoo_inv.SHAPES[name] == (setting.input_shape, setting.num_private)


def test_check_public_only_refuses_private_indices(digits: st.InversionSetting) -> None:
    digits.check_public_only(digits.public_indices())
    mixed = torch.cat([digits.public_indices()[:3], digits.private_indices("test")[:1]])
    with pytest.raises(PrivateDataLeak, match="private image"):
        digits.check_public_only(mixed)


def test_gan_prior_is_trained_on_public_indices_only(digits: st.InversionSetting) -> None:
    recipe = dataclasses.replace(
        prior_mod.DEFAULT_PRIORS["digits"], steps=TINY_GAN["gan_steps"], width=TINY_GAN["gan_width"]
    )
    prior = prior_mod.load_prior(recipe)
    used = torch.tensor(prior.meta["train_pool_indices"])
    private = torch.cat([digits.private_indices("train"), digits.private_indices("test")])
    assert used.numel() > 0 and not torch.isin(used, private).any()
    assert torch.equal(used, digits.public_indices())
    images = prior.generator(torch.zeros(2, prior.z_dim))
    assert (
        images.shape == (2, 1, 8, 8) and float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    )


def test_students_are_distilled_on_public_indices_only(
    target: rbl.Model, digits: st.InversionSetting
) -> None:
    # the same recipe as the lomma tests' students (shared cache)
    students, meta = lomma_mod.load_students(
        target, digits, archs=lomma_mod.STUDENT_ARCHS, epochs=2
    )
    used = torch.tensor(meta["train_pool_indices"])
    private = torch.cat([digits.private_indices("train"), digits.private_indices("test")])
    assert used.numel() > 0 and not torch.isin(used, private).any()
    assert len(students) == 3 and all(s.net is not target.net for s in students)
    assert meta["recipe"]["teacher_weights"] == lomma_mod.weights_digest(target.net)


def test_training_paths_refuse_a_leaky_public_split(
    target: rbl.Model, digits: st.InversionSetting, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(rbl.DataError, match="overlap"):
        dataclasses.replace(digits, public_classes=(4, 5, 6))
    honest = st.InversionSetting.public_indices
    leaky = lambda self: torch.cat([honest(self), self.private_indices("train")[:1]])  # noqa: E731
    monkeypatch.setattr(st.InversionSetting, "public_indices", leaky)
    students = {"0-linear": lomma_mod.build_student("linear", digits)}
    recipe = {"tau": 1.0, "lr": 0.01, "epochs": 1, "batch_size": 64}
    with pytest.raises(PrivateDataLeak):
        lomma_mod.distil(students, target, digits, recipe)
    gan = {"G": prior_mod.build_generator(digits, 4), "D": prior_mod.build_critic(digits, 4)}
    with pytest.raises(PrivateDataLeak):
        prior_mod.train_wgan_gp(gan, prior_mod.PriorRecipe(steps=1, width=4))


# ---------------------------------------------------------------- evaluator independence
def test_evaluator_is_never_the_target(target: rbl.Model, digits: st.InversionSetting) -> None:
    evaluator = ev.load_evaluator(digits)
    ev.check_independent(target, evaluator)
    assert type(evaluator.net[1]) is not type(target.net[0])  # a different architecture
    twin = rbl.Model(net=evaluator.net, name="renamed-copy", num_classes=5, input_shape=(1, 8, 8))
    with pytest.raises(EvaluatorIsTarget):
        ev.check_independent(twin, evaluator)
    with pytest.raises(EvaluatorIsTarget):  # attacking the evaluator itself is refused
        _attack("mi_face")(
            evaluator, torch.zeros(5, 1, 8, 8), _classes(), THREAT, target=_classes()
        )


# ---------------------------------------------------------------- the attacks
@pytest.mark.parametrize("name", ["mi_face", "gmi", "lomma"])
def test_reconstructions_in_bounds_and_scored_by_the_evaluator(
    name: str, target: rbl.Model
) -> None:
    t = _classes()
    attack = _attack(name)
    out = attack.run(
        target,
        torch.zeros(5, 1, 8, 8),
        t,
        rbl.ThreatModel.parse(THREAT),
        target=t,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.x_adv.shape == (5, 1, 8, 8)
    assert float(out.x_adv.min()) >= 0.0 and float(out.x_adv.max()) <= 1.0
    assert out.metrics["eval_model"] == "zoo:digits-private-eval" != target.name
    for key in ("eval_top1", "eval_top5", "knn_dist"):
        assert key in out.metrics
    assert 0.0 <= out.metrics["eval_top1"] <= 1.0 and out.metrics["knn_dist"] > 0.0
    if name == "lomma":  # the identity loss's scalars are recorded beside the scores
        assert out.metrics["lambda_reg"] == 1.0 and out.metrics["feature_var"] > 0.0
    res = attack(target, torch.zeros(5, 1, 8, 8), t, THREAT, target=t, seed=0)
    assert torch.equal(res.x_adv, out.x_adv)  # run() output already lies in the bounds


@pytest.mark.parametrize("name", ["mi_face", "gmi", "lomma"])
def test_same_seed_same_reconstructions(name: str, target: rbl.Model) -> None:
    t = _classes()
    extra = {"restarts": 2} if name == "mi_face" else {}
    attack = _attack(name, **extra)
    first = attack(target, torch.zeros(5, 1, 8, 8), t, THREAT, target=t, seed=3).x_adv
    again = attack(target, torch.zeros(5, 1, 8, 8), t, THREAT, target=t, seed=3).x_adv
    other = attack(target, torch.zeros(5, 1, 8, 8), t, THREAT, target=t, seed=4).x_adv
    assert torch.equal(first, again)
    if name != "mi_face":  # mi_face's first restart is the deterministic x0 = 0 run
        assert not torch.equal(first, other)


def test_lomma_feature_penalty_is_standardised_on_public_features(
    target: rbl.Model, digits: st.InversionSetting
) -> None:
    attack = rbl.create_attack("lomma", student_archs=())  # no students: only T's terms
    context = attack.context(target, digits)
    x_pub, _ = digits.public_data()
    t = torch.zeros(len(x_pub), dtype=torch.int64)
    with torch.no_grad():
        penalty = attack.identity_loss(target, context, x_pub, t) + target.logits(x_pub)[:, 0]
    assert context["lambda_reg"] == 1.0 and context["feature_var"] > 0.0
    # divided by the mean public feature variance, the penalty averages 1 over the public images
    assert abs(float(penalty.mean()) - 1.0) < 0.01


def test_mi_face_stops_at_the_confidence_threshold(target: rbl.Model) -> None:
    t = _classes()
    res = rbl.create_attack("mi_face", max_iter=500)(
        target, torch.zeros(5, 1, 8, 8), t, THREAT, target=t
    )
    assert res.metrics["mean_iterations"] < 500
    probs = torch.softmax(target.logits(res.x_adv), dim=1)[torch.arange(5), t]
    assert bool((probs >= 0.99).all()) and bool(res.success.all())


def test_unknown_setting_and_mismatched_model_are_errors(target: rbl.Model) -> None:
    with pytest.raises(rbl.UnsupportedThreatError, match="choose one of"):
        _attack("mi_face", setting="cifar")(
            target, torch.zeros(1, 1, 8, 8), _classes()[:1], THREAT, target=_classes()[:1]
        )
    ten = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    cnn = rbl.Model(
        net=ten, name="ten-classes", input_shape=(1, 8, 8), num_classes=10
    )  # not a target
    with pytest.raises(rbl.UnsupportedThreatError, match="fits no inversion setting"):
        _attack("mi_face")(
            cnn, torch.zeros(1, 1, 8, 8), _classes()[:1], THREAT, target=_classes()[:1]
        )


@pytest.mark.data
def test_orl_setting_bookkeeping() -> None:
    data_dir_or_skip("att_faces_orl")
    orl = st.get_setting("orl")
    x, y, is_train = orl.pool()
    assert x.shape == (400, 1, 48, 40) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    pub, priv = orl.public_indices(), orl.private_indices("train")
    assert len(pub) == 200 and len(priv) == 140 and len(orl.private_indices("test")) == 60
    assert set(y[pub].tolist()) == set(range(20, 40)) and set(y[priv].tolist()) == set(range(20))
    x_priv, y_priv, _ = orl.private_data("train")
    assert set(y_priv.tolist()) == set(range(20)) and x_priv.shape[1:] == orl.input_shape
    with pytest.raises(PrivateDataLeak):
        orl.check_public_only(priv[:2])
