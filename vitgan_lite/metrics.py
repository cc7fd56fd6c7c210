"""Metrics: the formulas of the Frechet Inception Distance (FID) and the Inception Score (IS).

Taught in ``notebooks/12_cifar10_on_a_gpu.ipynb`` (exercise 12.1 is :func:`frechet_distance`); the
course metric cFD (``vitgan_lite.quality``, lesson 11) applies the same formula to other features, and
``vitgan_lite.run.fidelity`` computes FID / IS of a generator through torch-fidelity's Inception.

FID (Heusel et al., NeurIPS 2017) fits a Gaussian to the Inception features of real and of
generated images and measures the Frechet (2-Wasserstein) distance between the two:

    FID = ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2))

IS (Salimans et al., NeurIPS 2016) is ``exp(E_x[KL(p(y|x) || p(y))])`` over Inception's class
probabilities, averaged over ``splits`` chunks of the samples.

Shape legend: ``N`` samples, ``d`` feature width, ``K`` classes.
"""

from __future__ import annotations

import numpy as np
import torch

Array = torch.Tensor | np.ndarray


class MetricsUnavailable(RuntimeError):
    """FID / IS cannot be computed here (no torch-fidelity, no Inception weights, no reference data).

    The message says why and how to fix it; a trainer catches it, logs it and carries on training.
    """


def feature_statistics(features: Array) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``mu (d,)`` and unbiased covariance ``sigma (d, d)`` of ``features (N, d)``, in float64."""
    f = torch.as_tensor(features).detach().to(device="cpu", dtype=torch.float64)  # (N, d)
    if f.ndim != 2:
        raise ValueError(f"features must have shape (N, d), one row per sample, got {tuple(f.shape)}")
    if f.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {f.shape[0]}: pass more samples")
    mu = f.mean(dim=0)  # (d,)
    sigma = torch.cov(f.T)  # (d, d), divides by N - 1 like numpy.cov (pytorch-fid, torch-fidelity)
    return mu, sigma


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    """Principal square root of a symmetric PSD matrix by eigen-decomposition (real by construction)."""
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)  # (d,), (d, d)
    # rounding can make a zero eigenvalue slightly negative: clip it, as the matrix is PSD in exact arithmetic
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T  # (d, d)


def frechet_distance(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array) -> float:
    """``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, the FID of two Gaussians.

    ``mu (d,)``, ``sigma (d, d)`` as tensors or numpy arrays. Computed in float64 through symmetric
    eigen-decompositions: ``Tr((S1 S2)^(1/2)) = Tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` since the two inner
    matrices are similar, and the right-hand one is symmetric PSD, so no complex square root (and no
    tiny imaginary part to discard, as with ``scipy.linalg.sqrtm``) ever appears.
    """
    mu1, mu2 = (torch.as_tensor(m).detach().to("cpu", torch.float64) for m in (mu1, mu2))  # (d,)
    sigma1, sigma2 = (
        torch.as_tensor(s).detach().to("cpu", torch.float64) for s in (sigma1, sigma2)
    )  # (d, d)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    for name, t, want in (
        ("mu1", mu1, (d,)),
        ("mu2", mu2, (d,)),
        ("sigma1", sigma1, (d, d)),
        ("sigma2", sigma2, (d, d)),
    ):
        if d < 0 or tuple(t.shape) != want:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}: expected mu1, mu2 of shape (d,) and sigma1, sigma2 of "
                f"shape (d, d) with one d (got mu1 {tuple(mu1.shape)}); use feature_statistics(features)"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf: the features it came from are not finite")
    sqrt_s1 = _sqrt_psd(sigma1)  # (d, d)
    inner = sqrt_s1 @ sigma2 @ sqrt_s1  # (d, d), symmetric PSD, same eigenvalues as sigma1 @ sigma2
    eig = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0)  # (d,)
    tr_covmean = eig.sqrt().sum()  # Tr((sigma1 sigma2)^(1/2))
    diff = mu1 - mu2  # (d,)
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2.0 * tr_covmean)


def inception_score_from_probs(probs: Array, splits: int = 10) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` of ``probs (N, K)``, over ``splits`` chunks.

    Returns ``(mean, std)``. Rows of ``probs`` are class probabilities (softmax outputs). The chunks are
    taken in order (shuffle first if the samples are sorted); the std is the population std over chunks,
    as in Salimans et al.'s code and torch-fidelity. Uniform rows give 1; confident one-hot rows spread
    evenly over K classes give K.
    """
    p = torch.as_tensor(probs).detach().to("cpu", torch.float64)  # (N, K)
    if p.ndim != 2:
        raise ValueError(
            f"probs must have shape (N, K), class probabilities per sample, got {tuple(p.shape)}"
        )
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must lie in [1, N] = [1, {p.shape[0]}], got {splits}")
    if (p < 0).any() or not torch.allclose(p.sum(dim=1), torch.ones(p.shape[0], dtype=p.dtype), atol=1e-4):
        raise ValueError(
            "probs rows must be non-negative and sum to 1: apply softmax to the classifier's logits"
        )
    N = p.shape[0]
    scores = []
    for k in range(splits):
        chunk = p[k * N // splits : (k + 1) * N // splits]  # (n, K), the same chunking as torch-fidelity
        p_y = chunk.mean(dim=0, keepdim=True)  # (1, K), the marginal p(y) over this chunk
        # xlogy gives 0 * log 0 = 0: a class with p(y|x) = 0 adds nothing to the KL
        kl = (torch.special.xlogy(chunk, chunk) - torch.special.xlogy(chunk, p_y)).sum(dim=1)  # (n,)
        scores.append(kl.mean().exp())
    s = torch.stack(scores)  # (splits,)
    return float(s.mean()), float(s.std(correction=0))


__all__ = ["MetricsUnavailable", "feature_statistics", "frechet_distance", "inception_score_from_probs"]
