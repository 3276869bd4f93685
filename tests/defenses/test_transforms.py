"""Input-transform defenses: shapes and ranges, what each transform does, BPDA surrogates and
the defense metadata that attacks read (``Model.defenses``, ``Model.randomized``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.errors import DataError, ParameterError

TRANSFORMS = (
    ("bit_depth", {"bits": 3}),
    ("jpeg", {"quality": 50}),
    ("median", {"size": 3}),
    ("median", {"size": 2, "approx": "identity"}),
    ("resize_pad", {"min_scale": 0.6}),
)
BOUNDS = (-1.0, 2.0)


class Identity(nn.Module):
    """Returns its (transformed) input flattened, so a model's output is the transform itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def _images(n: int = 6, shape: tuple[int, ...] = (2, 11, 13)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    lo, hi = BOUNDS
    return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)


def _probe(name: str, params: dict[str, object], shape: tuple[int, ...] = (2, 11, 13)) -> rbl.Model:
    base = rbl.Model(net=Identity(), bounds=BOUNDS, input_shape=shape, name="probe")
    return rbl.create_defense(name, **params).apply(base)


@pytest.mark.parametrize(("name", "params"), TRANSFORMS)
def test_transforms_keep_shape_and_bounds(name: str, params: dict[str, object]) -> None:
    x = _images()
    defended = _probe(name, params)
    with torch.no_grad():
        out = defended(x).reshape(x.shape)
    lo, hi = BOUNDS
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert float(out.min()) >= lo - 1e-5 and float(out.max()) <= hi + 1e-5
    assert not torch.equal(out, x)  # every transform changes generic inputs
    assert defended.defenses[-1].name.startswith(name)


def test_bit_depth_rounds_to_its_levels() -> None:
    x = _images()
    with torch.no_grad():
        out = _probe("bit_depth", {"bits": 2})(x)
    assert len(torch.unique(torch.round(out * 1e4))) == 4  # 2**2 levels across [lo, hi]


def test_jpeg_at_quality_100_is_nearly_lossless_and_low_quality_loses_detail() -> None:
    x = _images()
    step = (BOUNDS[1] - BOUNDS[0]) / 255
    with torch.no_grad():
        fine = _probe("jpeg", {"quality": 100})(x).reshape(x.shape)
        coarse = _probe("jpeg", {"quality": 5})(x).reshape(x.shape)
    assert float((fine - x).abs().max()) <= 4 * step  # rounding to 0..255 levels and unit table
    assert float((coarse - x).abs().mean()) > 10 * float((fine - x).abs().mean())
    # a constant image is one DC coefficient: compression keeps it (up to the 0..255 levels)
    flat = torch.full((1, 1, 8, 8), 0.5)
    with torch.no_grad():
        kept = _probe("jpeg", {"quality": 10}, (1, 8, 8))(flat).reshape(flat.shape)
    assert float((kept - 0.5).abs().max()) <= step


def test_median_removes_an_isolated_pixel_and_keeps_flat_images() -> None:
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1.0
    with torch.no_grad():
        out = _probe("median", {"size": 3}, (1, 7, 7))(x)
        flat = _probe("median", {"size": 3}, (1, 7, 7))(torch.full((1, 1, 7, 7), 0.25))
    assert float(out.abs().max()) == 0.0
    assert torch.allclose(flat, torch.full_like(flat, 0.25))


def test_resize_pad_is_random_and_pads_with_the_lower_bound() -> None:
    lo, hi = BOUNDS
    x = torch.full((64, 1, 8, 8), hi)
    defended = _probe("resize_pad", {"min_scale": 0.5}, (1, 8, 8))
    torch.manual_seed(0)
    with torch.no_grad():
        a, b = defended(x), defended(x)
    assert not torch.equal(a, b)  # a fresh draw per pass
    # a shrunk image leaves padding at exactly the lower bound (expected area 1 - E[r^2], 0.42)
    padded = (a == lo).float().mean()
    assert 0.1 < float(padded) < 0.6 and float(a.min()) >= lo
    assert defended.randomized and defended.draws == 10 and defended.draw_fraction == 0.5
    assert defended.surrogate is None  # differentiable: attacks need EOT, not BPDA


@pytest.mark.parametrize(("name", "params"), [t for t in TRANSFORMS if t[0] != "resize_pad"])
def test_bpda_surrogate_has_the_exact_forward_and_a_useful_gradient(
    name: str, params: dict[str, object]
) -> None:
    x = _images()
    defended = _probe(name, params)
    assert defended.surrogate is not None and not defended.randomized
    assert defended.defenses[-1].differentiable is False
    with torch.no_grad():
        assert torch.equal(defended(x), defended.surrogate(x))
    weight = torch.randn(x[0].numel(), generator=torch.Generator().manual_seed(1))
    x_in = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((defended.surrogate(x_in) @ weight).sum(), x_in)
    assert bool((grad.flatten(1).abs().sum(dim=1) > 0).all())  # every sample gets gradient


def test_rounding_transforms_have_zero_gradient_through_the_real_model() -> None:
    x = _images().requires_grad_(True)
    for name, params in (("bit_depth", {"bits": 3}), ("jpeg", {"quality": 50})):
        (grad,) = torch.autograd.grad(_probe(name, params)(x).sum(), x)
        assert float(grad.abs().max()) == 0.0, name  # the masking BPDA exists for


def test_defenses_chain_and_record_their_order() -> None:
    base = rbl.Model(net=Identity(), bounds=BOUNDS, input_shape=(2, 11, 13), name="probe")
    once = rbl.create_defense("jpeg", quality=60).apply(base)
    twice = rbl.create_defense("resize_pad", min_scale=0.7, draws=4).apply(once)
    assert [d.name for d in twice.defenses] == ["jpeg(60)", "resize_pad(0.7)"]
    assert twice.randomized and twice.draws == 4
    assert twice.surrogate is not None and twice.surrogate.randomized  # BPDA(jpeg) + random
    assert twice.name == "probe+jpeg(60)+resize_pad(0.7)"


def test_normalization_stays_inside_the_defended_model() -> None:
    """The transform sees inputs in the model's bounds, normalization happens after it."""
    base = rbl.Model(
        net=Identity(), bounds=(0.0, 1.0), mean=(0.5,), std=(0.25,), input_shape=(1, 8, 8)
    )
    x = _images(2, (1, 8, 8)).clamp(0, 1)
    with torch.no_grad():
        out = rbl.create_defense("bit_depth", bits=1).apply(base)(x)
    assert set(torch.unique(out).tolist()) <= {-2.0, 2.0}  # levels 0 and 1, then normalized


@pytest.mark.parametrize(
    ("name", "params", "word"),
    [
        ("jpeg", {"quality": 0}, "quality"),
        ("median", {"size": 1}, "size"),
        ("median", {"approx": "blur"}, "approx"),
        ("resize_pad", {"min_scale": 1.0}, "min_scale"),
        ("resize_pad", {"draws": 0}, "draws"),
        ("resize_pad", {"draw_fraction": 0.0}, "draw_fraction"),
    ],
)
def test_bad_parameters_name_the_parameter(name: str, params: dict[str, object], word: str) -> None:
    with pytest.raises(ParameterError, match=word):
        rbl.create_defense(name, **params)


def test_image_transforms_refuse_non_image_models() -> None:
    flat = rbl.Model(net=Identity(), input_shape=(16,), name="flat")
    for name in ("jpeg", "median", "resize_pad"):
        with pytest.raises(DataError, match="image inputs"):
            rbl.create_defense(name).apply(flat)
    assert rbl.create_defense("bit_depth").apply(flat).surrogate is not None


def test_models_validate_their_judging_parameters() -> None:
    with pytest.raises(DataError, match="draws"):
        rbl.Model(net=Identity(), draws=0)
    with pytest.raises(DataError, match="draw_fraction"):
        rbl.Model(net=Identity(), draw_fraction=1.5)
    plain = rbl.Model(net=Identity())
    assert not plain.randomized and plain.defenses == ()
    assert dataclasses.replace(plain, draws=3).draws == 3
