"""Tests for vitgan_lite.metrics (Frechet distance, Inception Score) and run.fidelity (FID plumbing).

All offline: no Inception weights, no network. FID runs through a stand-in feature extractor.
"""

from __future__ import annotations

import math
import sys
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitgan_lite.metrics import (
    MetricsUnavailable,
    feature_statistics,
    frechet_distance,
    inception_score_from_probs,
)
from vitgan_lite.run import fidelity
from vitgan_lite.run.fidelity import compute_fid_is, fid_reference


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_psd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, 2 * d, generator=gen(seed), dtype=torch.float64)  # (d, 2d)
    return a @ a.T / (2 * d)  # (d, d), symmetric positive definite, not diagonal


# ---------------------------------------------------------------------------------------------------
# Frechet distance


def test_frechet_distance_two_gaussians_analytic():
    # N(0, I) vs N(1, 4I) in 2-D: ||mu1 - mu2||^2 = 1 + 1 = 2; Tr(S1 + S2 - 2 sqrt(S1 S2)) =
    # 2 * (1 + 4 - 2 * sqrt(4)) = 2; FID = 4
    fid = frechet_distance(torch.zeros(2), torch.eye(2), torch.ones(2), 4 * torch.eye(2))
    assert isinstance(fid, float)
    assert fid == pytest.approx(4.0, abs=1e-12)


def test_frechet_distance_two_gaussians_from_samples():
    a = torch.randn(200_000, 2, generator=gen(0), dtype=torch.float64)  # N(0, I)
    b = 1.0 + 2.0 * torch.randn(200_000, 2, generator=gen(1), dtype=torch.float64)  # N(1, 4I)
    assert frechet_distance(*feature_statistics(a), *feature_statistics(b)) == pytest.approx(4.0, abs=0.05)


def test_frechet_distance_one_dimensional_hand_value():
    # in 1-D, FID = (m1 - m2)^2 + (s1 - s2)^2 with s the std: (0 - 1)^2 + (2 - 3)^2 = 2
    assert frechet_distance(np.zeros(1), np.array([[4.0]]), np.ones(1), np.array([[9.0]])) == pytest.approx(
        2.0
    )


def test_frechet_distance_identical_is_zero_and_symmetric():
    mu1, s1 = torch.randn(16, generator=gen(2), dtype=torch.float64), random_psd(16, 3)
    mu2, s2 = torch.randn(16, generator=gen(4), dtype=torch.float64), random_psd(16, 5)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    d12, d21 = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert d12 > 0.1 and d12 == pytest.approx(d21, rel=1e-9)


@pytest.mark.parametrize("n", [200, 12])  # 12 < d: rank-deficient covariances, as with few samples
def test_frechet_distance_matches_torch_fidelity(n: int):
    # independent reference: torch-fidelity's TTUR port (eigenvalues of S1 S2, complex square root)
    metric_fid = pytest.importorskip("torch_fidelity.metric_fid")
    f1 = torch.randn(n, 20, generator=gen(6), dtype=torch.float64)  # (n, 20)
    f2 = 0.5 + torch.randn(n, 20, generator=gen(7), dtype=torch.float64) @ random_psd(20, 8)  # (n, 20)
    ref = metric_fid.fid_statistics_to_metric(
        metric_fid.fid_features_to_statistics(f1), metric_fid.fid_features_to_statistics(f2), False
    )[metric_fid.KEY_METRIC_FID]
    assert frechet_distance(*feature_statistics(f1), *feature_statistics(f2)) == pytest.approx(ref, rel=1e-6)


def test_feature_statistics_matches_numpy():
    f = torch.randn(37, 5, generator=gen(9))  # (37, 5), float32 in
    mu, sigma = feature_statistics(f)
    assert mu.shape == (5,) and sigma.shape == (5, 5) and mu.dtype == sigma.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), f.double().numpy().mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(f.double().numpy(), rowvar=False), rtol=1e-10)


def test_frechet_distance_refuses_bad_statistics():
    with pytest.raises(ValueError, match=r"sigma2 has shape \(3, 3\).*one d"):
        frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="mu1 has shape.*feature_statistics"):
        frechet_distance(torch.zeros(2, 2), torch.eye(2), torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        frechet_distance(torch.tensor([0.0, math.nan]), torch.eye(2), torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        feature_statistics(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        feature_statistics(torch.zeros(4))


# ---------------------------------------------------------------------------------------------------
# Inception Score


def test_inception_score_uniform_is_one():
    mean, std = inception_score_from_probs(torch.full((50, 10), 0.1), splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("K,splits", [(10, 10), (4, 3)])
def test_inception_score_confident_balanced_is_k(K: int, splits: int):
    probs = torch.eye(K).repeat(splits * 2, 1)  # (2 K splits, K): each chunk holds every class twice
    mean, std = inception_score_from_probs(probs, splits=splits)
    assert mean == pytest.approx(K, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_hand_value():
    # p(y|x) rows [1, 0] and [1/2, 1/2]: p(y) = [3/4, 1/4];
    # KL_1 = log(4/3); KL_2 = 1/2 log(2/3) + 1/2 log(2) = 1/2 log(4/3); IS = exp(3/4 log(4/3)) = (4/3)^(3/4)
    mean, _ = inception_score_from_probs(torch.tensor([[1.0, 0.0], [0.5, 0.5]]), splits=1)
    assert mean == pytest.approx((4 / 3) ** 0.75, rel=1e-12)


def test_inception_score_matches_torch_fidelity():
    metric_isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = 3 * torch.randn(103, 7, generator=gen(10), dtype=torch.float64)  # 103: uneven chunks
    ref = metric_isc.isc_features_to_metric(logits, splits=10, shuffle=False)
    mean, std = inception_score_from_probs(logits.softmax(dim=1), splits=10)
    assert mean == pytest.approx(ref[metric_isc.KEY_METRIC_ISC_MEAN], rel=1e-10)
    assert std == pytest.approx(ref[metric_isc.KEY_METRIC_ISC_STD], rel=1e-8)


def test_inception_score_refuses_bad_probs():
    with pytest.raises(ValueError, match="sum to 1: apply softmax"):
        inception_score_from_probs(torch.randn(20, 4), splits=2)
    with pytest.raises(ValueError, match=r"splits must lie in \[1, N\] = \[1, 5\]"):
        inception_score_from_probs(torch.full((5, 2), 0.5), splits=10)
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        inception_score_from_probs(torch.full((5,), 0.2))


# ---------------------------------------------------------------------------------------------------
# compute_fid_is with a stand-in feature extractor (no torch-fidelity, no Inception)

PROJECTION = torch.randn(3 * 4 * 4, 8, generator=gen(11))  # fixed random projection, (48, 8)


def stand_in_extractor(x: torch.Tensor) -> torch.Tensor:
    """images (n, 3, 16, 16) in [-1, 1] -> features (n, 8): 4x4 average pool, then a fixed projection."""
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1, "extractor must see [-1, 1] floats"
    return F.avg_pool2d(x, 4).flatten(1) @ PROJECTION  # (n, 48) @ (48, 8) -> (n, 8)


def sampler_from(pool: torch.Tensor, calls: list[int]):
    """generator_fn handing out the images of ``pool`` in order, recording the batch sizes asked for."""

    def generator_fn(n: int) -> torch.Tensor:
        start = sum(calls)
        calls.append(n)
        return pool[start : start + n]  # (n, 3, 16, 16)

    return generator_fn


def test_fid_with_stand_in_extractor():
    data = torch.rand(800, 3, 16, 16, generator=gen(12)) * 2 - 1  # one random set, split into halves
    calls: list[int] = []
    same = compute_fid_is(
        sampler_from(data[:400], calls), 400, data[400:], feature_extractor=stand_in_extractor, batch_size=64
    )
    assert set(same) == {"fid"} and isinstance(same["fid"], float)
    assert calls == [64] * 6 + [16], "generator_fn must be asked for batch_size images at a time"
    # a very different set: darker images with less contrast
    dark = (0.2 * torch.rand(400, 3, 16, 16, generator=gen(13)) - 0.8).clamp(-1, 1)
    different = compute_fid_is(
        sampler_from(dark, []), 400, data[400:], feature_extractor=stand_in_extractor, batch_size=64
    )
    assert same["fid"] < 0.05 * different["fid"], (same, different)
    # the plumbing equals FID on our own statistics of the same features
    ref = frechet_distance(
        *feature_statistics(stand_in_extractor(dark)), *feature_statistics(stand_in_extractor(data[400:]))
    )
    assert different["fid"] == pytest.approx(ref, rel=1e-9)


def test_fid_stand_in_accepts_uint8_reference():
    real = torch.randint(0, 256, (60, 3, 16, 16), generator=gen(14), dtype=torch.uint8)
    as_float = real.float() / 127.5 - 1  # the course's [-1, 1] convention
    fakes = torch.rand(50, 3, 16, 16, generator=gen(15)) * 2 - 1
    a = compute_fid_is(sampler_from(fakes, []), 50, real, feature_extractor=stand_in_extractor)
    b = compute_fid_is(sampler_from(fakes, []), 50, as_float, feature_extractor=stand_in_extractor)
    assert a["fid"] == pytest.approx(b["fid"], rel=1e-6)


def test_compute_fid_is_refuses_bad_arguments():
    fakes = torch.zeros(4, 3, 16, 16)
    with pytest.raises(ValueError, match="reference must be a tensor of real images"):
        compute_fid_is(sampler_from(fakes, []), 4, "cifar10-train", feature_extractor=stand_in_extractor)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 2"):
        compute_fid_is(sampler_from(fakes, []), 1, fakes, feature_extractor=stand_in_extractor)
    with pytest.raises(ValueError, match=r"generator_fn\(4\) must return 4 images"):
        compute_fid_is(lambda n: fakes[0], 4, fakes, feature_extractor=stand_in_extractor)
    with pytest.raises(ValueError, match=r"feature_extractor must map .* to \(n, d\) features"):
        compute_fid_is(sampler_from(fakes, []), 4, fakes, feature_extractor=lambda x: x.mean())


# ---------------------------------------------------------------------------------------------------
# compute_fid_is through torch-fidelity: every failure is a MetricsUnavailable, before any work


def never_called(n: int) -> torch.Tensor:
    raise AssertionError("generator_fn must not be called when the metrics cannot be computed")


@pytest.fixture
def no_network(monkeypatch):
    """Make any download attempt fail as it would offline, and count the attempts."""
    attempts: list[str] = []

    def offline(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return attempts


def test_missing_weights_file_raises_before_any_work(tmp_path, no_network):
    missing = tmp_path / "nope" / "inception.pth"
    with pytest.raises(
        MetricsUnavailable, match=r"inception\.pth does not exist.*pass its path as weights_path"
    ):
        compute_fid_is(never_called, 100, "cifar10-train", weights_path=missing)
    assert no_network == [], "a missing weights file must not trigger a download"


def test_offline_default_weights_raise_metrics_unavailable(tmp_path, monkeypatch, no_network):
    pytest.importorskip("torch_fidelity")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    with pytest.raises(MetricsUnavailable, match=r"could not download the Inception weights.*weights_path="):
        compute_fid_is(never_called, 100, "cifar10-train")
    assert len(no_network) == 1


def test_a_wrong_weights_file_is_named_before_any_work(tmp_path):
    wrong = tmp_path / "inception.pth"
    for content in (b"", b"<html>404 Not Found</html>"):
        wrong.write_bytes(content)
        with pytest.raises(MetricsUnavailable, match=r"is not the Inception weights file.*download"):
            compute_fid_is(never_called, 100, "cifar10-train", weights_path=wrong)


def test_offline_reference_raises_metrics_unavailable(tmp_path, monkeypatch):
    tf = pytest.importorskip("torch_fidelity")
    weights = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1)}, weights)  # a state dict; Inception is never built: the reference fails

    def offline_dataset(root, download):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setitem(tf.registry.DATASETS_REGISTRY, "cifar10-train", offline_dataset)
    with pytest.raises(MetricsUnavailable, match=r"reference 'cifar10-train' could not be loaded.*folder"):
        compute_fid_is(never_called, 100, "cifar10", weights_path=weights, datasets_root=tmp_path)
    with pytest.raises(MetricsUnavailable, match="neither a folder of images nor a torch-fidelity data set"):
        compute_fid_is(never_called, 100, tmp_path / "missing", weights_path=weights)


def test_missing_torch_fidelity_raises_metrics_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import torch_fidelity now fails
    with pytest.raises(MetricsUnavailable, match=r"torch-fidelity.*pip install"):
        compute_fid_is(never_called, 100, "cifar10-train")


def test_sampler_feeds_torch_fidelity_uint8():
    # torch-fidelity's Inception reads uint8 in [0, 255]: -1 -> 0, 1 -> 255, 0 -> 128 (127.5 rounds to even)
    sampler = fidelity._Sampler(lambda n: torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(n, 3, 2, 2))
    out = sampler(torch.randn(5, 1))
    assert out.dtype == torch.uint8 and out.shape == (5, 3, 2, 2)
    assert out[:, :, 0, 0].tolist() == [[0, 128, 255]] * 5


def test_fid_reference_names_cifar10_once(monkeypatch, tmp_path):
    monkeypatch.delenv("VITGAN_LITE_DATA", raising=False)
    assert fid_reference("cifar10") == fid_reference("CIFAR-10") == fid_reference(None) == "cifar10-train"
    assert fid_reference(str(tmp_path)) == str(tmp_path)
    monkeypatch.setenv("VITGAN_LITE_DATA", str(tmp_path))  # a local copy of CIFAR-10: its folder
    assert fid_reference("cifar10") == str(tmp_path)
