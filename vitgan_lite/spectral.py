"""Spectral normalization (SN) and ViTGAN's improved spectral normalization (ISN), taught in
``notebooks/04_spectral_normalization.ipynb``.

SN (Miyato et al., ICLR 2018) divides a weight by its largest singular value so that each layer is
1-Lipschitz::

    W_SN = W / sigma(W)

ISN (ViTGAN Sec. 4.1, eq. 4) multiplies back the spectral norm the weight had at initialization, so
layers keep their initial scale (plain SN makes a transformer discriminator learn slowly)::

    W_ISN = sigma(W_init) * W / sigma(W)

sigma(W) is estimated by power iteration, one step per training forward, with the singular-vector
estimates u and v kept in buffers and carried over from step to step (a fresh start each step would not
converge). sigma(W_init) is computed once, exactly by SVD, when the layer is wrapped.

Implementation: ``torch.nn.utils.parametrize``. ``module.weight`` becomes a computed tensor, and the
trained weight W is the SAME ``nn.Parameter`` object as before, now at
``module.parametrizations.weight.original`` -- so an optimizer built before or after wrapping trains it.
A Conv2d weight (out, in, k, k) is normalized as the matrix (out, in * k * k), like ``torch.nn.utils
.spectral_norm``.

Shape legend: ``W`` is a weight matrix (out, in); ``u`` (out,) and ``v`` (in,) its singular vectors.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

MODES = ("isn", "sn", "none")


def power_iteration(
    W: torch.Tensor, u: torch.Tensor, n_iters: int = 1, eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Estimate the largest singular value of W (out, in) by power iteration from u (out,).

    Each step is v = W^T u / |W^T u|, u = W v / |W v|; then sigma = u^T W v. The estimate converges to
    sigma(W) from below, at a rate set by the gap between the top two singular values.

    Returns:
        (sigma, u, v): a scalar tensor, the updated u (out,) and v (in,).
    """
    if W.ndim != 2:
        raise ValueError(
            f"W must be a matrix (out, in), got shape {tuple(W.shape)}: reshape it with W.flatten(1)"
        )
    if u.shape != (W.shape[0],):
        raise ValueError(
            f"u must have shape ({W.shape[0]},) to match W {tuple(W.shape)}, got {tuple(u.shape)}"
        )
    if n_iters < 1:
        raise ValueError(f"n_iters must be at least 1, got {n_iters}")
    for _ in range(n_iters):
        v = F.normalize(W.T @ u, dim=0, eps=eps)  # (in,)
        u = F.normalize(W @ v, dim=0, eps=eps)  # (out,)
    sigma = u @ (W @ v)  # (), the Rayleigh-quotient estimate u^T W v
    return sigma, u, v


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A context that turns autocast off on CPU and CUDA (older torch has no autocast elsewhere)."""
    if device_type in ("cpu", "cuda"):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class SpectralNorm(nn.Module):
    """Parametrization W -> W / sigma(W) (Miyato et al. 2018), with persistent power-iteration buffers.

    Register it with ``torch.nn.utils.parametrize.register_parametrization(layer, "weight", SpectralNorm(
    layer.weight))``, or use ``apply_spectral_norm``. Buffers: ``u`` (out,), ``v`` (in,).

    Args:
        weight: the layer's weight, (out, in) or (out, in, k, k); read once to size and seed u and v.
        n_power_iterations: power-iteration steps per training-mode forward.
        eps: guards the normalizations against division by zero.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, eps: float = 1e-12) -> None:
        super().__init__()
        if weight.ndim < 2:
            raise ValueError(f"spectral normalization needs a 2+ dim weight, got shape {tuple(weight.shape)}")
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be at least 1, got {n_power_iterations}")
        self.n_power_iterations, self.eps = n_power_iterations, eps
        out_features, in_features = weight.shape[0], weight[0].numel()
        self.register_buffer("u", weight.new_empty(out_features))  # (out,)
        self.register_buffer("v", weight.new_empty(in_features))  # (in,)
        self.reset_state(weight)

    @staticmethod
    def _as_matrix(weight: torch.Tensor) -> torch.Tensor:
        return weight.flatten(1)  # (out, in * k * k) for a conv, (out, in) for a linear

    @torch.no_grad()
    def reset_state(self, weight: torch.Tensor) -> None:
        """Re-seed u, v for a (re)initialized weight: random u, then 15 power iterations, as torch does."""
        W = self._as_matrix(weight.detach())  # (out, in)
        u = F.normalize(torch.randn_like(self.u), dim=0, eps=self.eps)  # (out,)
        _, u, v = power_iteration(W, u, n_iters=15, eps=self.eps)
        self.u.copy_(u)
        self.v.copy_(v)

    def sigma(self, weight: torch.Tensor) -> torch.Tensor:
        """sigma(W) = u^T W v, differentiable in W only; in training mode u, v first take power steps."""
        W = self._as_matrix(weight)  # (out, in)
        # In full precision even under bf16/fp16 autocast: a sigma rounded to 3 digits would jitter W_eff.
        with _autocast_off(W.device.type):
            if self.training:
                with torch.no_grad():  # u and v are estimates, not functions of W to backpropagate through
                    _, u, v = power_iteration(W, self.u, self.n_power_iterations, self.eps)
                    # Written back in place: the next step starts from this estimate (it must persist).
                    self.u.copy_(u)
                    self.v.copy_(v)
            # Clones: a later forward updates the buffers in place, which must not disturb this step's
            # graph (e.g. D(real) and D(fake) both run before one backward).
            u, v = self.u.clone(), self.v.clone()  # (out,), (in,)
            return u @ (W @ v)  # ()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """W / sigma(W), same shape as W."""
        return weight / self.sigma(weight)


class ISN(SpectralNorm):
    """ViTGAN's improved spectral normalization, W -> sigma(W_init) * W / sigma(W) (eq. 4).

    sigma(W_init) is computed once, exactly (``torch.linalg.matrix_norm(W, 2)``, i.e. by SVD), from the
    weight given here, and stored in the buffer ``sigma_init``; it is never re-estimated. Buffers:
    ``u`` (out,), ``v`` (in,), ``sigma_init`` ().
    """

    @torch.no_grad()
    def reset_state(self, weight: torch.Tensor) -> None:
        """Record sigma(W_init) and re-seed u, v; called at wrap time and after a re-initialization."""
        sigma_init = torch.linalg.matrix_norm(self._as_matrix(weight.detach()), ord=2)  # (), exact, by SVD
        if "sigma_init" in self._buffers:
            self.sigma_init.copy_(sigma_init)
        else:
            self.register_buffer("sigma_init", sigma_init)  # sigma(W_init), ISN eq. 4
        super().reset_state(weight)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """sigma(W_init) * W / sigma(W), same shape as W."""
        return weight * (self.sigma_init / self.sigma(weight))


def spectral_parametrization(layer: nn.Module) -> SpectralNorm | None:
    """The SpectralNorm/ISN parametrization on ``layer.weight`` (its u, v, sigma_init), or None."""
    if parametrize.is_parametrized(layer, "weight"):
        for p in layer.parametrizations.weight:
            if isinstance(p, SpectralNorm):
                return p
    return None


def apply_spectral_norm(module: nn.Module, mode: str = "isn", n_power_iterations: int = 1) -> nn.Module:
    """Wrap every ``nn.Linear`` and ``nn.Conv2d`` inside ``module`` (itself included) with ISN or SN.

    Args:
        module: any module; changed in place.
        mode: "isn" (ViTGAN), "sn" (Miyato et al.) or "none" (leave it as it is).
        n_power_iterations: power-iteration steps per training forward.

    Returns:
        ``module``. Call it after the weights are initialized: ISN records sigma(W_init) now.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if mode == "none":
        return module
    norm_cls = ISN if mode == "isn" else SpectralNorm
    for name, layer in module.named_modules():
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            continue
        if spectral_parametrization(layer) is not None:
            raise ValueError(
                f"layer {name or type(layer).__name__!r} is already spectrally normalized: "
                "apply_spectral_norm must be called once per module"
            )
        parametrize.register_parametrization(
            layer, "weight", norm_cls(layer.weight, n_power_iterations=n_power_iterations)
        )
    return module


@torch.no_grad()
def spectral_norms(module: nn.Module, exact: bool = False) -> dict[str, float]:
    """sigma of the effective weight of every Linear/Conv2d in ``module``, by layer name (diagnostics).

    For a wrapped layer the default estimate takes one power step on the effective weight from the
    stored u, WITHOUT writing it back (the training state is left untouched): sigma ~= |W_eff v'| with
    v' = W_eff^T u / |W_eff^T u|, a lower bound that is tight once u has converged. Layers without SN/ISN
    (and every layer when ``exact=True``) report the exact value, ``torch.linalg.matrix_norm(W_eff, 2)``.
    Under ISN the values should stay at each layer's sigma_init; under SN, at 1.
    """
    out: dict[str, float] = {}
    for name, layer in module.named_modules():
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            continue
        norm = spectral_parametrization(layer)
        if norm is None:
            W_eff = layer.weight.flatten(1)  # (out, in)
        else:
            W = layer.parametrizations.weight.original.flatten(1)  # (out, in), the trained weight
            # The effective weight from the current u, v, without a training-mode update.
            scale = norm.sigma_init if isinstance(norm, ISN) else 1.0
            W_eff = W * (scale / (norm.u @ (W @ norm.v)))  # (out, in)
        if exact or norm is None:
            out[name] = torch.linalg.matrix_norm(W_eff.float(), ord=2).item()
        else:
            v = F.normalize(W_eff.T @ norm.u, dim=0, eps=norm.eps)  # (in,)
            out[name] = (W_eff @ v).norm().item()
    return out


__all__ = [
    "MODES",
    "power_iteration",
    "SpectralNorm",
    "ISN",
    "apply_spectral_norm",
    "spectral_norms",
    "spectral_parametrization",
]
