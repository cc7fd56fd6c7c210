"""cFD / cKID (vitgan_lite.quality): exact values on stand-in features, the committed net, and real data.

The tests that need CIFAR-10 read it from ``$VITGAN_LITE_DATA`` (a local folder) and skip without it;
nothing here touches a network.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.data import load_images, to_float
from vitgan_lite.metrics import MetricsUnavailable
from vitgan_lite.quality import (
    DEFAULT_WEIGHTS,
    FEATURE_DIM,
    CifarFeatureNet,
    FeatureNetUnavailable,
    QualityReference,
    course_fd,
    features,
    kid,
    load_feature_net,
    quality_scale,
    reference_indices,
    reference_statistics,
    score,
)

pytestmark = pytest.mark.usefixtures("one_thread")

MIN_TEST_ACCURACY = 0.80  # what tools/train_feature_net.py must reach before its weights are committed


class PixelFeatures(nn.Module):
    """Stand-in extractor: the first ``d`` pixels of row 0 of channel 0, so features are what we put there."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, : self.d]  # (B, d)


def exact_gaussian(n: int, d: int, mean: float, std: float, seed: int) -> torch.Tensor:
    """``n`` rows whose sample mean is exactly ``mean`` and sample covariance exactly ``std^2 I``."""
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # (n, d)
    z = z - z.mean(dim=0)
    chol = torch.linalg.cholesky(torch.cov(z.T))  # (d, d), cov(z) = L L^T
    z = torch.linalg.solve_triangular(chol, z.T, upper=False).T  # (n, d), cov = I
    return mean + std * z


def as_images(f: torch.Tensor) -> torch.Tensor:
    """Float64 images (n, 3, 32, 32), zero except the first pixels of row 0, channel 0, which hold ``f``."""
    x = torch.zeros(f.shape[0], 3, 32, 32, dtype=torch.float64)
    x[:, 0, 0, : f.shape[1]] = f
    assert x.abs().max() < 1, "the stand-in features must lie in [-1, 1] to pass as images"
    return x


# ----------------------------------------------------------------------------------------------------
# cFD and cKID on known features


def test_cfd_of_exact_gaussian_statistics_matches_the_closed_form():
    # N(0, s^2 I) vs N(s 1, 4 s^2 I) in d dims: ||mu||^2 = d s^2, Tr(S1 + S2 - 2 (S1 S2)^(1/2)) =
    # d s^2 (1 + 4 - 2 * 2) = d s^2, so cFD = 2 d s^2 (the N(0, I) vs N(1, 4I) example, scaled into [-1, 1])
    d, s, n = 8, 0.08, 500
    a = as_images(exact_gaussian(n, d, 0.0, s, seed=1))
    b = as_images(exact_gaussian(n, d, s, 2 * s, seed=2))
    out = course_fd(a, b, net=PixelFeatures(d), kid_subsets=5, kid_subset_size=100)
    assert set(out) == {"cfd", "kid", "kid_std"}
    assert out["cfd"] == pytest.approx(2 * d * s**2, rel=1e-9)
    assert course_fd(a, a, net=PixelFeatures(d), kid_subsets=5, kid_subset_size=100)["cfd"] == pytest.approx(
        0.0, abs=1e-12
    )


def test_score_with_a_reference_equals_course_fd():
    d = 4
    a = as_images(exact_gaussian(300, d, 0.0, 0.1, seed=3))
    b = as_images(exact_gaussian(200, d, 0.1, 0.1, seed=4))
    net = PixelFeatures(d)
    ref = reference_statistics(b, net)
    assert isinstance(ref, QualityReference)
    assert ref.mu.shape == (d,) and ref.sigma.shape == (d, d) and ref.features.shape == (200, d)
    # the KID subset size falls to min(N_fake, N_ref) = 200 when there are fewer samples than asked for
    assert score(a, ref, net) == course_fd(a, b, net)
    assert score(a, ref, net)["cfd"] == pytest.approx(d * 0.1**2, rel=1e-9)  # means differ by 0.1 per dim
    with pytest.raises(TypeError, match="reference_statistics"):
        score(a, (ref.mu, ref.sigma), net)


def _mmd2_unbiased_by_hand(x: list[list[float]], y: list[list[float]]) -> float:
    """The unbiased MMD^2 with k(u, v) = (u.v / d + 1)^3, written out with loops."""
    d, m = len(x[0]), len(x)

    def k(u: list[float], v: list[float]) -> float:
        return (sum(ui * vi for ui, vi in zip(u, v)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_reference_on_a_tiny_example():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64) + 0.7
    want = _mmd2_unbiased_by_hand(x.tolist(), y.tolist())
    # a subset of all rows is a permutation of them, and the MMD does not depend on the order
    mean, std = kid(x, y, subsets=3, subset_size=6)
    assert mean == pytest.approx(want, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    # with smaller subsets, each subset's value is the same formula on the rows drawn
    mean4, _ = kid(x, y, subsets=1, subset_size=4, seed=5)
    gen = torch.Generator().manual_seed(5)
    ix, iy = torch.randperm(6, generator=gen)[:4], torch.randperm(6, generator=gen)[:4]
    assert mean4 == pytest.approx(_mmd2_unbiased_by_hand(x[ix].tolist(), y[iy].tolist()), rel=1e-12)


def test_kid_is_about_zero_for_one_distribution_and_positive_for_a_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1000, 16, generator=g).relu()  # post-ReLU-like features
    b = torch.randn(1000, 16, generator=g).relu()
    shifted = b + 0.3
    same, same_std = kid(a, b, subsets=20, subset_size=500)
    ident, _ = kid(a, a, subsets=20, subset_size=500)
    shift, _ = kid(a, shifted, subsets=20, subset_size=500)
    assert shift > 0
    assert abs(same) < 0.05 * shift and abs(ident) < 0.05 * shift
    assert kid(a, shifted, subsets=20, subset_size=500) == (shift, pytest.approx(kid(a, shifted, 20, 500)[1]))


def test_kid_refuses_impossible_subsets():
    a, b = torch.randn(50, 4), torch.randn(80, 4)
    with pytest.raises(ValueError, match=r"subset_size must lie in \[2, min\(N_a, N_b\)\] = \[2, 50\]"):
        kid(a, b, subset_size=100)
    with pytest.raises(ValueError, match="one d"):
        kid(a, torch.randn(80, 5), subset_size=10)


def test_reference_indices_are_fixed_and_distinct():
    idx = reference_indices(50_000)
    assert idx.shape == (10_000,) and idx.unique().numel() == 10_000
    assert torch.equal(idx, reference_indices(50_000))
    with pytest.raises(ValueError, match="size"):
        reference_indices(100)


# ----------------------------------------------------------------------------------------------------
# Input checks (they run before the net is loaded)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, 3, 64, 64), r"must be 32x32.*resize to 32x32"),
        ((2, 32, 32, 3), r"channels-last\? use x.permute\(0, 3, 1, 2\)"),
        ((3, 32, 32), r"x.unsqueeze\(0\)"),
        ((2, 1, 32, 32), r"must have 3 channels"),
    ],
)
def test_features_refuses_bad_shapes_with_a_sentence(shape, match):
    with pytest.raises(ValueError, match=match):
        features(torch.zeros(shape))


def test_features_refuses_bad_values():
    with pytest.raises(ValueError, match=r"look like \[0, 255\].*uint8"):
        features(torch.full((2, 3, 32, 32), 200.0))
    with pytest.raises(ValueError, match="NaN or inf"):
        features(torch.full((2, 3, 32, 32), float("nan")))
    with pytest.raises(TypeError, match="uint8 .* or float"):
        features(torch.zeros(2, 3, 32, 32, dtype=torch.int64))


# ----------------------------------------------------------------------------------------------------
# The committed feature net


def test_committed_weights_are_small_load_frozen_and_report_their_accuracy():
    assert DEFAULT_WEIGHTS.is_file(), f"{DEFAULT_WEIGHTS} is missing: run tools/train_feature_net.py"
    assert DEFAULT_WEIGHTS.stat().st_size < 3e6
    net = load_feature_net()
    assert isinstance(net, CifarFeatureNet) and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert net.meta["test_accuracy"] >= MIN_TEST_ACCURACY
    assert net.meta["feature_dim"] == FEATURE_DIM == net.feature_dim
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert net(x).shape == (4, 10)


def test_published_scale_belongs_to_the_committed_weights_and_is_ordered():
    scale = quality_scale()
    meta = load_feature_net().meta
    assert scale["feature_net"] == {k: meta[k] for k in scale["feature_net"]}, (
        "quality_scale.json was computed with other weights: rerun tools/quality_scale.py"
    )
    rows = scale["rows"]
    for suffix, n in (("", 10_000), ("@2000", 2000)):
        order = [rows[name + suffix] for name in ("real_test", "blur3", "blur5", "down8", "noise")]
        assert [r["num_samples"] for r in order] == [n] * 5
        assert all(a["cfd"] < b["cfd"] for a, b in zip(order, order[1:]))
        assert (
            rows["real_test" + suffix]["cfd"] < rows["down16" + suffix]["cfd"] < rows["down8" + suffix]["cfd"]
        )
    assert rows["real_test"]["cfd"] < rows["real_test@2000"]["cfd"]  # the bias: fewer samples, larger cFD


def test_features_are_deterministic_and_uint8_equals_float():
    u = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    f = features(u)
    assert f.shape == (6, FEATURE_DIM) and f.dtype == torch.float64 and f.device.type == "cpu"
    assert torch.equal(f, features(to_float(u)))
    assert torch.equal(f, features(u))
    assert torch.allclose(f, features(u, batch_size=4), atol=1e-5)


def test_a_missing_or_corrupt_weights_file_names_the_file_and_the_script(tmp_path: Path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FeatureNetUnavailable, match=r"nope\.pt does not exist.*tools/train_feature_net\.py"):
        load_feature_net(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(FeatureNetUnavailable, match=r"corrupt\.pt could not be read.*train_feature_net\.py"):
        load_feature_net(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(FeatureNetUnavailable, match=r"not a cFD feature net file"):
        load_feature_net(foreign)
    assert issubclass(FeatureNetUnavailable, MetricsUnavailable)  # a trainer that catches it carries on


# ----------------------------------------------------------------------------------------------------
# Real CIFAR-10 (skipped without $VITGAN_LITE_DATA)

DATA = os.environ.get("VITGAN_LITE_DATA")
needs_data = pytest.mark.skipif(
    not DATA or not Path(DATA).is_dir(), reason="set VITGAN_LITE_DATA to a local CIFAR-10 image folder"
)


@pytest.fixture(scope="module")
def cifar_small():
    test = load_images(DATA, "test", 32, per_class=40)  # 400 images
    train = load_images(DATA, "train", 32, per_class=40)
    return test, train


@needs_data
def test_the_net_classifies_real_cifar_images(cifar_small):
    test, _ = cifar_small
    with torch.no_grad():
        pred = load_feature_net()(to_float(test.images[::4])).argmax(1)  # 100 images, 10 a class
    acc = (pred == test.labels[::4]).float().mean().item()
    assert acc >= 0.7, f"accuracy {acc:.2f} on 100 CIFAR-10 test images"


@needs_data
def test_cfd_orders_real_blurred_and_noise(cifar_small):
    test, train = cifar_small
    ref = reference_statistics(train.images)
    real = to_float(test.images)  # (400, 3, 32, 32)
    blurred = F.avg_pool2d(real, 3, stride=1, padding=1, count_include_pad=False)
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    s_real, s_blur, s_noise = (
        score(x, ref, kid_subsets=10, kid_subset_size=200) for x in (real, blurred, noise)
    )
    assert s_real["cfd"] < s_blur["cfd"] < s_noise["cfd"]
    assert s_real["kid"] < s_blur["kid"] < s_noise["kid"]
    assert all(math.isfinite(v) for s in (s_real, s_blur, s_noise) for v in s.values())
