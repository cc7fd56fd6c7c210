"""Checkers for lesson 05 (the ViT discriminator, ``notebooks/05_vit_discriminator.ipynb``).

Exercise 5.1 ``DiscriminatorBlock``: the pre-norm residual block h' = MSA(LN(h)) + h, h'' = MLP(LN(h')) + h'.
Exercise 5.2 the discriminator's ``forward``: h_0 = [x_cls; E(x_p)] + E_pos, the blocks, y = LN(h_L^0),
one logit per image with no non-linearity after it (ViTGAN Sec. 3).

Shape legend: ``B`` batch, ``N`` patch tokens (N + 1 with the CLS token), ``D`` width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.attention import L2MultiHeadAttention
from vitgan_lite.checks._core import (
    checker,
    expect,
    expect_close,
    expect_grads_reach_every_parameter,
    expect_tensor,
    fail,
    seeded,
)
from vitgan_lite.discriminator import DiscriminatorBlock as RefBlock
from vitgan_lite.discriminator import ViTDiscriminator

# (dim, num_heads, mlp_ratio, B, N): odd batches and token counts, non-default widths and ratios.
BLOCK_CASES = [(8, 2, 4.0, 3, 5), (12, 3, 2.0, 1, 7), (6, 1, 1.5, 2, 4)]

# Small discriminators: (kwargs, B). Odd batch sizes, one and three channels, SN/ISN on and off.
DISC_CASES = [
    (dict(image_size=8, patch_size=4, overlap=1, channels=3, dim=8, depth=2, num_heads=2, mlp_ratio=2.0), 3),
    (dict(image_size=8, patch_size=2, overlap=2, channels=1, dim=12, depth=1, num_heads=3, mlp_ratio=1.0), 2),
]

_BLOCK_NAMES = "norm1, attn, norm2, mlp (with mlp.fc1, mlp.act, mlp.fc2, or mlp.0, mlp.1, mlp.2)"


def _load_reference_weights(learner: nn.Module, ref: nn.Module, what: str, names: str) -> None:
    """Copy ``ref``'s weights into ``learner``; the failure names the sub-module names to use."""
    state = ref.state_dict()
    own = learner.state_dict()
    if "mlp.0.weight" in own and "mlp.fc1.weight" in state:  # an unnamed nn.Sequential is fine too
        state = {k.replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.2."): v for k, v in state.items()}
    missing, extra = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    expect(
        not missing and not extra,
        f"{what} does not have the reference's sub-modules (missing {missing[:4]}, unexpected {extra[:4]}): "
        f"{names} so that the checker can copy the reference's weights in",
    )
    for k, v in state.items():
        expect(
            own[k].shape == v.shape,
            f"{what}: {k} has shape {tuple(own[k].shape)} instead of {tuple(v.shape)}. The MLP's hidden "
            "width is int(dim * mlp_ratio); every other layer keeps the width dim",
        )
    learner.load_state_dict(state)


def _block_variants(ref: RefBlock, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the usual wrong blocks output, built from the reference's own sub-modules."""
    a, m, n1, n2 = ref.attn, ref.mlp, ref.norm1, ref.norm2
    h = x + a(n1(x))  # (B, N, D), the correct first half
    post = n1(x + a(x))  # (B, N, D)
    return {
        "post-norm (LayerNorm AFTER the residual sum, as in the original Transformer) instead of "
        "pre-norm: write x = x + attn(norm1(x)), then x = x + mlp(norm2(x))": n2(post + m(post)),
        "the residual (skip) connection around the attention is missing: write x = x + attn(norm1(x)), "
        "not x = attn(norm1(x))": a(n1(x)) + m(n2(a(n1(x)))),
        "the residual (skip) connection around the MLP is missing: the second line must be "
        "x = x + mlp(norm2(x))": m(n2(h)),
        "both residual (skip) connections are missing: each sub-layer ADDS its output to its input, "
        "x = x + attn(norm1(x)); x = x + mlp(norm2(x))": m(n2(a(n1(x)))),
        "the residual adds the NORMALIZED input: the skip path must carry x itself, "
        "x = x + attn(norm1(x)), not norm1(x) + attn(norm1(x))": (lambda h1: n2(h1) + m(n2(h1)))(
            n1(x) + a(n1(x))
        ),
        "norm1 is used twice: the MLP branch needs its own LayerNorm, x = x + mlp(norm2(x))": h + m(n1(h)),
        "the MLP runs before the attention: the block is attention first, then MLP": (
            lambda h1: h1 + a(n1(h1))
        )(x + m(n2(x))),
        "the MLP's result is discarded: add it to x, x = x + mlp(norm2(x))": h,
    }


@checker("5.1", "DiscriminatorBlock")
def check_discriminator_block(block_cls: type[nn.Module]) -> None:
    """Check a learner's ``DiscriminatorBlock(dim, num_heads, mlp_ratio=4.0, fast=True)`` class."""
    for seed, (dim, heads, ratio, B, N) in enumerate(BLOCK_CASES):
        torch.manual_seed(seed)
        ref = RefBlock(dim, heads, ratio)
        # A non-identity LayerNorm affine, so that a missing or shared norm shows in the output.
        with torch.no_grad():
            for i, ln in enumerate((ref.norm1, ref.norm2)):
                ln.weight.uniform_(0.5, 1.5, generator=seeded(100 + 10 * seed + i))
                ln.bias.normal_(0.0, 0.3, generator=seeded(200 + 10 * seed + i))
        block = block_cls(dim=dim, num_heads=heads, mlp_ratio=ratio)
        expect(
            isinstance(getattr(block, "attn", None), L2MultiHeadAttention),
            "block.attn should be the package's L2MultiHeadAttention(dim, num_heads) (ViTGAN's L2 attention "
            "with tied W_q = W_k, lesson 03), not a dot-product attention",
        )
        _load_reference_weights(block, ref, "your block", f"name them {_BLOCK_NAMES}")
        x = torch.randn(B, N, dim, generator=seeded(seed))
        out = block(x.clone())
        expect_tensor(out, (B, N, dim), f"the block on x of shape {(B, N, dim)}")
        with torch.no_grad():
            expected = ref(x)
            if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
                for mistake, wrong in _block_variants(ref, x).items():
                    expect(
                        not torch.allclose(out, wrong, atol=1e-5, rtol=1e-4),
                        f"your block looks like {mistake}",
                    )
        expect_close(
            out,
            expected,
            f"the block's output differs from the reference (dim {dim}, {heads} heads, mlp_ratio {ratio}): "
            "check the order LN -> attention -> add, then LN -> MLP (fc1, GELU, fc2) -> add",
        )
    # Defining property: with both branches' output layers zeroed the block is the identity, because
    # each sub-layer is added to a skip path that carries x unchanged (pre-norm keeps the skip path clean).
    with torch.no_grad():
        fc2 = block.mlp[-1]
        for layer in (block.attn.proj, fc2):
            layer.weight.zero_()
            layer.bias.zero_()
    expect_close(
        block(x),
        x,
        "with attn.proj and the last MLP layer zeroed the block should return x unchanged: the residual "
        "path must carry x itself, with no LayerNorm on it (pre-norm, not post-norm)",
    )
    # Backward reaches every parameter.
    block = block_cls(dim=8, num_heads=2, mlp_ratio=4.0)
    block(torch.randn(3, 5, 8, generator=seeded(9))).square().sum().backward()
    expect_grads_reach_every_parameter(
        block, lambda name: f"no gradient reaches {name}: is that sub-module used in forward?"
    )


def _images(B: int, kw: dict, seed: int) -> torch.Tensor:
    """B random images in [-1, 1] of the size and channels in ``kw``."""
    S = kw["image_size"]
    return torch.rand(B, kw["channels"], S, S, generator=seeded(seed)) * 2 - 1  # (B, C, S, S)


class _Hooks:
    """Records h_0 (the first block's input), h_L (the last block's output) of a discriminator."""

    def __init__(self, model: nn.Module) -> None:
        self.h0: torch.Tensor | None = None
        self.hL: torch.Tensor | None = None
        self.handles = [
            model.blocks[0].register_forward_pre_hook(lambda m, args: setattr(self, "h0", args[0])),
            model.blocks[-1].register_forward_hook(lambda m, args, out: setattr(self, "hL", out)),
        ]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _diagnose_h0(h0: torch.Tensor, ref: ViTDiscriminator, x: torch.Tensor) -> str | None:
    """Name what is wrong with the learner's h_0 (the first block's input), or None if it is right."""
    B = x.shape[0]
    N = ref.num_patches
    patches = ref.patch_embed(x)  # (B, N, D)
    cls = ref.cls_token.expand(B, -1, -1)  # (B, 1, D)
    pos = torch.cat([ref.cls_pos, ref.pos_embed()], dim=0)  # (N + 1, D)
    right = torch.cat([cls, patches], dim=1) + pos  # (B, N + 1, D)
    if h0.shape == right.shape and torch.allclose(h0, right, atol=1e-5, rtol=1e-4):
        return None
    if h0.ndim != 3 or h0.shape[1] == N:
        return (
            f"the blocks see {tuple(h0.shape)[1:2]} tokens instead of N + 1 = {N + 1}: the CLS token is "
            "absent. Prepend it, h = torch.cat([self.cls_token.expand(B, -1, -1), h], dim=1)"
        )
    if h0.shape != right.shape:
        return f"the blocks' input h_0 has shape {tuple(h0.shape)} instead of {tuple(right.shape)}"
    # The CLS row is the one row that is the same for every image (x_cls + its position).
    same = [j for j in range(N + 1) if torch.allclose(h0[0, j], h0[-1, j], atol=1e-6)]
    if same == [N]:
        return (
            "the CLS token is appended at the END of the sequence: the course prepends it, so that it is "
            "token 0 (h_0 = [x_cls; E(x_p^1); ...] + E_pos) and the pooled token is h_L^0. Use "
            "torch.cat([cls, h], dim=1)"
        )
    tokens = torch.cat([cls, patches], dim=1)  # (B, N + 1, D)
    if torch.allclose(h0, tokens, atol=1e-5, rtol=1e-4):
        return (
            "E_pos is not added: without positions the transformer cannot tell where a patch is. Add "
            "torch.cat([self.cls_pos, self.pos_embed()], dim=0), shape (N + 1, D), to the tokens"
        )
    if torch.allclose(h0, torch.cat([cls, patches + ref.pos_embed()], dim=1), atol=1e-5):
        return "self.cls_pos (the CLS token's own position in E_pos) is not added to the CLS token"
    return (
        "the first block's input h_0 differs from [x_cls; patch_embed(x)] + E_pos: check the patch "
        "embedding, the CLS token (first) and E_pos = torch.cat([self.cls_pos, self.pos_embed()], dim=0)"
    )


_ACTIVATIONS = {
    "GELU": F.gelu,
    "ReLU": F.relu,
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "LeakyReLU": F.leaky_relu,
}

_DISC_NAMES = "subclass ViTDiscriminator and only override forward"

_NO_ACTIVATION = (
    "the logit must be the head's raw output, with NO non-linearity after it: D(x) is a logit that the "
    "logistic loss softplus(-D(x)) turns into a probability itself. Return self.head(y).squeeze(-1)"
)


def _diagnose_head(out: torch.Tensor, hL: torch.Tensor, ref: ViTDiscriminator, expected: torch.Tensor) -> str:
    """Name what is wrong between h_L (right) and the logits ``out`` (wrong)."""
    head, norm = ref.head, ref.norm
    for name, act in _ACTIVATIONS.items():
        if torch.allclose(out, act(expected), atol=1e-5, rtol=1e-4):
            return f"there is a {name} after the final logit: {_NO_ACTIVATION}"
    pooled = {
        "the LAST token is pooled; the CLS token is token 0, so take h[:, 0]": norm(hL[:, -1]),
        "the tokens are mean-pooled; ViTGAN pools the CLS token, h[:, 0]": norm(hL.mean(dim=1)),
        "the tokens are mean-pooled after the norm; ViTGAN pools the CLS token, h[:, 0]": norm(hL).mean(1),
        "the final LayerNorm is missing: y = self.norm(h[:, 0]) (y = LN(h_L^0)) goes into the head": hL[:, 0],
    }
    for mistake, y in pooled.items():
        if torch.allclose(out, head(y).squeeze(-1), atol=1e-5, rtol=1e-4):
            return mistake
    return (
        "the blocks' output h_L is right, but the logits differ from head(norm(h_L[:, 0])): pool the CLS "
        "token, apply self.norm, then self.head, and squeeze to shape (B,)"
    )


@checker("5.2", "the discriminator's forward")
def check_discriminator_forward(disc_cls: type[nn.Module]) -> None:
    """Check a learner's discriminator class (a ``ViTDiscriminator`` subclass with its own ``forward``)."""
    # Defining property: the logit is LINEAR in the head. Scaling the head's weight and bias by -s must
    # flip the sign of every logit, whatever comes before the head; a GELU/ReLU/softplus after the logit
    # clips the negative side, a sigmoid/tanh bounds both.
    kw = DISC_CASES[0][0]
    ref = ViTDiscriminator(**kw, spectral_norm="none")
    learner = disc_cls(**kw, spectral_norm="none")
    _load_reference_weights(learner, ref, "your discriminator", _DISC_NAMES)
    x = _images(16, kw, 7)  # (16, C, S, S)
    outs = {}
    with torch.no_grad():
        w, b = ref.head.weight.clone(), ref.head.bias.clone()  # no SN on the head here: raw Parameters
        for s in (200.0, -200.0):
            for m in (ref, learner):
                m.head.weight.copy_(s * w)
                m.head.bias.copy_(s * b)
            outs[s] = learner(x).flatten(), ref(x)  # (16,), (16,)
    (plus, ref_plus), (minus, _) = outs[200.0], outs[-200.0]
    top, got = float(ref_plus.abs().max()), float(torch.cat([plus, minus]).abs().max())
    expect(
        got > min(0.1 * top, 10.0),
        f"with the head's weights scaled by +-200 your logits stay within +-{got:.2f} while the "
        f"reference's reach +-{top:.0f}: something bounds them (a sigmoid or tanh after the logit?). "
        + _NO_ACTIVATION,
    )
    expect(
        torch.allclose(minus, -plus, rtol=1e-4, atol=1e-3),
        "scaling the head's weights by -200 instead of +200 should flip the sign of every logit, but "
        f"yours go from [{float(plus.min()):.2f}, {float(plus.max()):.2f}] to [{float(minus.min()):.2f}, "
        f"{float(minus.max()):.2f}]: something clips them from below (a GELU or ReLU after the logit?). "
        + _NO_ACTIVATION,
    )
    for seed, (kw, B) in enumerate(DISC_CASES):
        for norm in ("none", "isn"):
            torch.manual_seed(seed)
            ref = ViTDiscriminator(**kw, spectral_norm=norm).eval()
            learner = disc_cls(**kw, spectral_norm=norm).eval()
            _load_reference_weights(learner, ref, "your discriminator", _DISC_NAMES)
            x = _images(B, kw, seed)  # (B, C, S, S)
            hooks = _Hooks(learner)
            try:
                out = learner(x.clone())
            finally:
                hooks.remove()
            expect(hooks.h0 is not None, "your forward never runs self.blocks: apply each block in turn")
            if isinstance(out, torch.Tensor) and tuple(out.shape) == (B, 1):
                fail("the logits have shape (B, 1): squeeze the last dimension to get (B,)")
            expect_tensor(out, (B,), f"the discriminator on {B} images")
            with torch.no_grad():
                problem = _diagnose_h0(hooks.h0, ref, x)
                expect(problem is None, f"{problem}")
                hL = ref.tokens(x)  # (B, N + 1, D)
                expect_close(
                    hooks.hL,
                    hL,
                    "the last block's output differs from the reference although h_0 is right: apply "
                    "every block of self.blocks, in order, each to the previous block's output",
                )
                expected = ref(x)  # (B,)
                if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
                    fail(_diagnose_head(out, hL, ref, expected))
    # Backward reaches every parameter: the CLS token, its position, E_pos, every block, the norm, the head.
    learner = disc_cls(**DISC_CASES[0][0], spectral_norm="none")
    learner(_images(3, DISC_CASES[0][0], 11)).sum().backward()
    expect_grads_reach_every_parameter(
        learner, lambda name: f"no gradient reaches {name}: is it used in your forward?"
    )


__all__ = ["check_discriminator_block", "check_discriminator_forward"]
