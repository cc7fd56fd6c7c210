"""Checkers for lesson 05 (the ViT discriminator, ``notebooks/05_vit_discriminator.ipynb``).

Exercise 5.1 ``DiscriminatorBlock``: the pre-norm residual block h' = MSA(LN(h)) + h, h'' = MLP(LN(h')) + h'.
Exercise 5.2 the discriminator's ``forward``: h_0 = [x_cls; E(x_p)] + E_pos, the blocks, y = LN(h_L^0),
one logit per image with no non-linearity after it (ViTGAN Sec. 3).

Each checker tests one property at a time, from the most basic up, so that the first failing property is
the learner's mistake. 5.1: the block builds (an int hidden width), its parts (two LayerNorms with an
affine, ViTGAN's L2 attention with ``fast`` passed on by name, the MLP's width), each part on its own
(the MLP's activation, the attention), then the block: deterministic, its input left alone, the values
(matched against the usual wrong blocks), float64, the zero-branch identity and the gradients compared
with the reference's. 5.2: the forward runs (a CLS token expanded to the batch, ``self.pos_embed()``
called), returns (B,) also for one image, then every step is compared with the reference's while it runs:
h_0 (CLS first, E_pos once, in the right order), the chain of blocks, the pooled token, the final norm,
the head with no activation (the logit is linear in the head: scaling the head by -1 flips it), and the
gradients of every parameter.

Shape legend: ``B`` batch, ``N`` patch tokens (N + 1 with the CLS token), ``D`` width.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.attention import MultiHeadAttention
from vitgan_lite.checks._core import (
    build_seeded,
    checker,
    expect,
    expect_close,
    expect_tensor,
    fail,
    seeded,
    stage,
)
from vitgan_lite.discriminator import DiscriminatorBlock as RefBlock
from vitgan_lite.discriminator import ViTDiscriminator

# (dim, num_heads, mlp_ratio, B, N): a batch of 1, odd token counts, one head, non-default ratios, and
# dim * mlp_ratio = 7.5, not whole (the hidden width is int(7.5) = 7).
BLOCK_CASES = [(8, 2, 4.0, 3, 5), (12, 3, 2.0, 1, 7), (6, 1, 1.25, 2, 4)]

# Small discriminators: (kwargs, B, spectral norm). Odd batch sizes and a single image, one and three
# channels, ISN on and off. The first case (no SN: the head's weights are raw parameters) is the one
# whose messages name the mistakes.
_KW0 = dict(image_size=8, patch_size=4, overlap=1, channels=3, dim=8, depth=2, num_heads=2, mlp_ratio=2.0)
_KW1 = dict(image_size=8, patch_size=2, overlap=2, channels=1, dim=12, depth=1, num_heads=3, mlp_ratio=1.0)
DISC_CASES = [(_KW0, 3, "none"), (_KW0, 3, "isn"), (_KW1, 2, "none"), (_KW1, 1, "isn")]

_BLOCK_NAMES = "norm1, attn, norm2, mlp (with mlp.fc1, mlp.act, mlp.fc2, or mlp.0, mlp.1, mlp.2)"
_TOL = dict(atol=1e-4, rtol=1e-4)  # admits a LayerNorm eps of 1e-6 (timm) instead of torch's 1e-5

BLOCK_HINTS = (
    "Two sub-layers wrapped the same way, attention first, then the MLP: normalise the branch's input with "
    "its OWN LayerNorm, run the branch, and ADD its output to the un-normalised x (the skip path carries x "
    "itself; no norm on it, no in-place +=). The attention is ViTGAN's L2MultiHeadAttention(dim, "
    "num_heads, fast=fast) (tied W_q = W_k, lesson 03); the MLP is Linear(dim, hidden) -> GELU -> "
    "Linear(hidden, dim) with hidden = int(dim * mlp_ratio). Keep the names norm1, attn, norm2, mlp.",
    "__init__:\n"
    "    hidden = int(...)\n"
    "    self.norm1 = nn.LayerNorm(...)\n"
    "    self.attn = L2MultiHeadAttention(..., ..., fast=...)\n"
    "    self.norm2 = nn.LayerNorm(...)\n"
    "    self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(..., ...), act=nn.GELU(), fc2=...))\n"
    "forward(x):\n"
    "    x = x + self.attn(...)          # h' = MSA(LN(h)) + h\n"
    "    return x + ...                  # h'' = MLP(LN(h')) + h'",
)

FORWARD_HINTS = (
    "h = self.patch_embed(x) is (B, N, D). self.cls_token is ONE (1, 1, D) token: expand it to (B, 1, D) "
    "and concatenate it BEFORE the patch tokens (dim=1), so that it is token 0. E_pos of the whole "
    "sequence is torch.cat([self.cls_pos, self.pos_embed()], dim=0), (N + 1, D): add it once, before the "
    "blocks. Run every block in turn, h = block(h). Then pool the CLS token h[:, 0], apply self.norm, "
    "then self.head, with NO activation after it, and squeeze the last axis to (B,).",
    "h = self.patch_embed(x)                                   # (B, N, D)\n"
    "cls = self.cls_token.expand(..., -1, -1)                  # (B, 1, D)\n"
    "h = torch.cat([..., ...], dim=1)                          # (B, N + 1, D), CLS first\n"
    "h = h + torch.cat([..., ...], dim=0)                      # + E_pos, (N + 1, D)\n"
    "for block in self.blocks:\n"
    "    h = ...\n"
    "return self.head(self.norm(h[:, ...])).squeeze(...)       # (B,)",
)

# ----------------------------------------------------------------------------------------------------
# Exercise 5.1: DiscriminatorBlock
# ----------------------------------------------------------------------------------------------------

DOT_PRODUCT = (
    "block.attn is {kind}: a dot-product attention. ViTGAN's discriminator uses the package's "
    "L2MultiHeadAttention(dim, num_heads, fast=fast) (L2 attention with tied W_q = W_k, lesson 03), "
    "not a dot-product attention: its logits -||q_i - k_j||^2 keep the discriminator Lipschitz"
)
QK_BIAS = (
    "built with fast=False, your block's attn.qk and attn.v have no bias: L2MultiHeadAttention's third "
    "positional argument is qkv_bias, so L2MultiHeadAttention(dim, num_heads, fast) turns the biases off "
    "when fast is False. Pass it by name, fast=fast"
)
FAST_IGNORED = (
    "built with fast=False, your block's attention still has fast=True: the argument fast is not passed "
    "on. Write L2MultiHeadAttention(dim, num_heads, fast=fast)"
)
IN_PLACE = (
    "your block changed its input tensor in place (x += ...): the caller's tokens are overwritten, and "
    "autograd fails, because the LayerNorm saved x for the backward pass. Write x = x + "
    "self.attn(self.norm1(x)), which makes a new tensor"
)


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _mlp_rename(block: nn.Module) -> Callable[[str], str]:
    """Reference parameter name -> the learner's, for an MLP whose two Linears are not named fc1, fc2
    (an unnamed nn.Sequential, maybe with a Dropout(0) in it: mlp.0 and mlp.2 or mlp.3)."""
    mlp = getattr(block, "mlp", None)
    names = (
        [n for n, m in mlp.named_modules() if isinstance(m, nn.Linear)] if isinstance(mlp, nn.Module) else []
    )
    if len(names) != 2 or names == ["fc1", "fc2"]:
        return lambda name: name
    return lambda name: name.replace("mlp.fc1.", f"mlp.{names[0]}.").replace("mlp.fc2.", f"mlp.{names[1]}.")


def _grads_close(a: torch.Tensor | None, b: torch.Tensor) -> bool:
    """Two gradients agree up to float32 rounding, relative to the gradient's own scale (admits eps 1e-6)."""
    return a is not None and float((a - b).abs().max()) <= 1e-3 * max(1.0, float(b.abs().max()))


def _dead_summary(names: list[str]) -> str:
    """Parameter names grouped by sub-module: "cls_pos, pos_embed.*, blocks.0.attn.*"."""
    groups: list[str] = []
    for name in names:
        parts = name.split(".")
        keep = 3 if parts[0] == "blocks" else 1
        group = ".".join(parts[:keep]) + (".*" if len(parts) > keep else "")
        if group not in groups:
            groups.append(group)
    return ", ".join(groups[:6]) + (" ..." if len(groups) > 6 else "")


def _build_block(
    block_cls: type[nn.Module], seed: int, dim: int, heads: int, ratio: float, **kw
) -> nn.Module:
    """The learner's block, built under a seed; a float hidden width is named, not a traceback."""
    slow = ", fast=False" if "fast" in kw else ""
    where = f"DiscriminatorBlock(dim={dim}, num_heads={heads}, mlp_ratio={ratio}{slow})"
    with stage(f"building {where}"):
        try:
            return build_seeded(block_cls, seed, dim=dim, num_heads=heads, mlp_ratio=ratio, **kw)
        except TypeError as e:
            if "float" in str(e) and ("size" in str(e) or "int" in str(e)):
                fail(
                    f"{where} raised {type(e).__name__}: {str(e)[:120]}. The MLP's hidden width is a float "
                    f"(dim * mlp_ratio = {dim * ratio}), and nn.Linear needs an int: hidden = "
                    "int(dim * mlp_ratio)"
                )
            raise


def _check_block_parts(block: nn.Module, dim: int, ratio: float) -> None:
    """The four named parts: two LayerNorms with an affine, the L2 attention, the MLP's width."""
    parts = {name: getattr(block, name, None) for name in ("norm1", "attn", "norm2", "mlp")}
    missing = [name for name, part in parts.items() if not isinstance(part, nn.Module)]
    expect(
        not missing,
        f"your block has no sub-module {', '.join(missing)}: name them {_BLOCK_NAMES}, so that the "
        "checker can copy the reference's weights in",
    )
    expect(
        parts["norm2"] is not parts["norm1"],
        "self.norm2 is the same LayerNorm as norm1: each branch needs its own, with its own weight and "
        "bias. Create two, self.norm1 = nn.LayerNorm(dim) and self.norm2 = nn.LayerNorm(dim)",
    )
    for name in ("norm1", "norm2"):
        norm = parts[name]
        if isinstance(norm, nn.LayerNorm):
            expect(
                norm.elementwise_affine and norm.bias is not None,
                f"self.{name} is a LayerNorm without its affine weight and bias (elementwise_affine=False "
                "or bias=False): ViT's LayerNorm learns them. Use nn.LayerNorm(dim)",
            )
    attn = parts["attn"]
    if isinstance(attn, (MultiHeadAttention, nn.MultiheadAttention)) or not hasattr(attn, "qk"):
        fail(DOT_PRODUCT.format(kind=type(attn).__name__))
    hidden = int(dim * ratio)
    fc = _linears(parts["mlp"])
    if len(fc) == 2:
        expect(
            fc[0].out_features == hidden,
            f"the MLP's hidden width is {fc[0].out_features}, expected int(dim * mlp_ratio) = int({dim} * "
            f"{ratio}) = {hidden}: hidden = int(dim * mlp_ratio) (not rounded up, not a fixed 4 * dim)",
        )


def _load_reference_weights(learner: nn.Module, ref: nn.Module, what: str, names: str) -> None:
    """Copy ``ref``'s weights into ``learner``; the failure names the sub-module names to use."""
    state = ref.state_dict()
    own = learner.state_dict()
    rename = _mlp_rename(learner)
    state = {rename(k): v for k, v in state.items()}
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


def _check_mlp(block: nn.Module, ref: RefBlock, z: torch.Tensor) -> None:
    """The MLP alone: fc2(GELU(fc1(z))), with exact GELU; its usual wrong activations named."""
    with torch.no_grad():
        out, expected = block.mlp(z), ref.mlp(z)  # (B, N, D)
        if torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
            return
        fc1, fc2 = ref.mlp.fc1, ref.mlp.fc2
        candidates = {
            "the MLP's activation is ReLU, not GELU: use nn.GELU() between fc1 and fc2": F.relu,
            "the MLP's activation is GELU(approximate='tanh'), not the exact GELU of the reference and "
            "timm's ViT: use nn.GELU()": lambda t: F.gelu(t, approximate="tanh"),
            "the MLP's activation is SiLU, not GELU: use nn.GELU() between fc1 and fc2": F.silu,
            "the MLP has no activation between fc1 and fc2, so it is one linear map: add nn.GELU() "
            "between them, Linear -> GELU -> Linear": lambda t: t,
        }
        for message, act in candidates.items():
            if torch.allclose(out, fc2(act(fc1(z))), atol=1e-5, rtol=1e-4):
                fail(message)
    expect_close(
        out,
        expected,
        "block.mlp(z) differs from fc2(GELU(fc1(z))) with the reference's weights: the MLP is "
        "Linear(dim, hidden) -> nn.GELU() -> Linear(hidden, dim), nothing else",
    )


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
        "norm1 and norm2 are swapped: norm1 goes before the attention, norm2 before the MLP": (
            lambda h1: h1 + m(n1(h1))
        )(x + a(n2(x))),
        "the MLP runs before the attention: the block is attention first, then MLP": (
            lambda h1: h1 + a(n1(h1))
        )(x + m(n2(x))),
        "the attention reads x itself, with no LayerNorm: pre-norm normalises the branch's input, "
        "x = x + self.attn(self.norm1(x))": (lambda h1: h1 + m(n2(h1)))(x + a(x)),
        "the MLP reads h' itself, with no LayerNorm: pre-norm normalises the branch's input, "
        "x = x + self.mlp(self.norm2(x))": h + m(h),
        "the MLP branch reads the block's input x (both branches in parallel) instead of h' = x + "
        "attn(norm1(x)): update x first, then x = x + self.mlp(self.norm2(x))": h + m(n2(x)),
        "the MLP's result is discarded: add it to x, x = x + mlp(norm2(x))": h,
    }


def _block_trace(block: nn.Module, ref: RefBlock, x: torch.Tensor) -> str:
    """Where the learner's block first departs from the reference: what attn and mlp receive."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(block, name).register_forward_pre_hook(
            lambda m, args, name=name: seen.setdefault(name, args[0].detach()) if args else None
        )
        for name in ("attn", "mlp")
    ]
    try:
        with torch.no_grad():
            block(x.clone())
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        h = x + ref.attn(ref.norm1(x))  # (B, N, D)
        steps = [("attn", ref.norm1(x), "self.norm1(x)"), ("mlp", ref.norm2(h), "self.norm2(h')")]
    for name, expected, what in steps:
        got = seen.get(name)
        if got is None:
            return f"self.{name} is never called (as self.{name}(...)) in forward: both branches are used"
        if got.shape != expected.shape or not torch.allclose(got, expected, **_TOL):
            return (
                f"self.{name} gets a tensor that is not {what}: with h' = x + self.attn(self.norm1(x)), the "
                f"branches read self.norm1(x) and self.norm2(h')"
            )
    return (
        "both branches get the right inputs, but the output differs from h' + self.mlp(self.norm2(h')): "
        "return x + self.mlp(self.norm2(x)) after x = x + self.attn(self.norm1(x)), nothing else"
    )


def _check_block_grads(block: nn.Module, ref: RefBlock, x: torch.Tensor, where: str) -> None:
    """Gradients of every parameter and of the input equal the reference's (no detach, no in-place)."""
    g = torch.randn(x.shape, generator=seeded(99))  # (B, N, D)
    block.zero_grad(set_to_none=True)
    ref.zero_grad(set_to_none=True)
    xs = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    with stage(f"the backward pass through {where}"):
        try:
            (block(xs) * g).sum().backward()
        except RuntimeError as e:
            if "modified by an inplace operation" in str(e):
                fail(
                    "the backward pass fails: a tensor the LayerNorm or the attention saved for it was "
                    f"changed in place (x += ...). {IN_PLACE}"
                )
            raise
    (ref(xr) * g).sum().backward()
    params = dict(block.named_parameters())
    dead = [n for n, p in params.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    expect(
        not dead,
        f"{where}: no gradient reaches {_dead_summary(dead)}: that branch "
        "is cut from the graph (.detach(), or computed under torch.no_grad()), or never used. Let "
        "gradients flow through both branches",
    )
    expect(
        _grads_close(xs.grad, xr.grad),
        f"{where}: the output is right, but the gradient with respect to the block's input differs from "
        "the reference's: the skip path is cut (x.detach() + ...?). Gradients must flow through the "
        "skip path unchanged: do not detach x",
    )
    for name, p in ref.named_parameters():
        own = params.get(_mlp_rename(block)(name))
        expect(
            _grads_close(own.grad, p.grad),
            f"{where}: the output is right, but the gradient of {name} differs from the reference's: part "
            "of a branch is detached or computed under torch.no_grad()",
        )


@checker(
    "5.1", "DiscriminatorBlock", hints=BLOCK_HINTS, reference="vitgan_lite.discriminator:DiscriminatorBlock"
)
def check_discriminator_block(block_cls: type[nn.Module]) -> None:
    """Check a learner's ``DiscriminatorBlock(dim, num_heads, mlp_ratio=4.0, fast=True)`` class."""
    for seed, (dim, heads, ratio, B, N) in enumerate(BLOCK_CASES):
        where = f"your block (dim {dim}, {heads} heads, mlp_ratio {ratio}) on x of shape {(B, N, dim)}"
        ref = build_seeded(RefBlock, seed, dim, heads, ratio)
        # A non-identity LayerNorm affine, so that a missing, shared or swapped norm shows in the output.
        with torch.no_grad():
            for i, ln in enumerate((ref.norm1, ref.norm2)):
                ln.weight.uniform_(0.5, 1.5, generator=seeded(100 + 10 * seed + i))
                ln.bias.normal_(0.0, 0.3, generator=seeded(200 + 10 * seed + i))
        block = _build_block(block_cls, seed, dim, heads, ratio)
        _check_block_parts(block, dim, ratio)
        if seed == 0:  # fast=False must reach the attention, by name (the third positional is qkv_bias)
            slow = _build_block(block_cls, seed, dim, heads, ratio, fast=False)
            _check_block_parts(slow, dim, ratio)
            expect(all(lin.bias is not None for lin in _linears(slow.attn)), QK_BIAS)
            expect(getattr(slow.attn, "fast", False) is False, FAST_IGNORED)
        _load_reference_weights(block, ref, "your block", f"name them {_BLOCK_NAMES}")
        x = torch.randn(B, N, dim, generator=seeded(seed))  # (B, N, D)
        with torch.no_grad(), stage(where):
            once, again = block(x.clone()), block(x.clone())
        expect(
            not isinstance(once, torch.Tensor) or once.shape != again.shape or torch.equal(once, again),
            f"{where} gives different outputs for the same input: something random runs in forward (a "
            "Dropout with p > 0?). ViTGAN's discriminator block has none: remove it",
        )
        z = 3 * torch.randn(B, N, dim, generator=seeded(300 + seed))  # (B, N, D), large: GELU's tails matter
        _check_mlp(block, ref, z)
        with torch.no_grad():
            expect_close(
                block.attn(z),
                ref.attn(z),
                "block.attn(x) differs from the package's L2MultiHeadAttention with the same weights: use "
                "L2MultiHeadAttention(dim, num_heads, fast=fast) from vitgan_lite.attention",
                **_TOL,
            )

        x_in = x.clone()
        with torch.no_grad():
            out = block(x_in)
        expect(torch.equal(x_in, x), IN_PLACE)
        out = expect_tensor(out, (B, N, dim), where)
        with torch.no_grad():
            expected = ref(x)  # (B, N, D)
            if not torch.allclose(out, expected, **_TOL):
                for mistake, wrong in _block_variants(ref, x).items():
                    if torch.allclose(out, wrong, **_TOL):
                        fail(f"your block looks like {mistake}")
                fail(f"{where}: {_block_trace(block, ref, x)}")
        _check_block_grads(block, ref, x, where)

    # float64 in, float64 out: the block keeps the dtype it is given.
    block64, ref64 = block.double(), ref.double()
    x64 = x.double()  # (B, N, D)
    with stage("your block, converted with .double(), on a float64 x"):
        try:
            out64 = block64(x64)
        except RuntimeError as e:
            if re.search(r"dtype|scalar type|Float|Double", str(e)):
                fail(
                    f"your block fails on float64 input (after block.double()): {str(e)[:150]}. Something "
                    "casts x to float32 (.float()?): keep the input's dtype"
                )
            raise
    expect(
        out64.dtype == torch.float64,
        f"given a float64 x (and block.double()), your block returns {out64.dtype}: it casts to float32 "
        "(.float()?). Keep the input's dtype",
    )
    expect_close(out64, ref64(x64), "on float64 input your block differs from the reference", **_TOL)

    # Defining property: with both branches' output layers zeroed the block is the identity, because
    # each sub-layer is added to a skip path that carries x unchanged (pre-norm keeps the skip path clean).
    block = block.float()
    with torch.no_grad():
        for layer in (block.attn.proj, _linears(block.mlp)[-1]):
            layer.weight.zero_()
            layer.bias.zero_()
        expect_close(
            block(x),
            x,
            "with attn.proj and the last MLP layer zeroed the block should return x unchanged: the residual "
            "path must carry x itself, with no LayerNorm on it (pre-norm, not post-norm)",
            **_TOL,
        )


# ----------------------------------------------------------------------------------------------------
# Exercise 5.2: the discriminator's forward
# ----------------------------------------------------------------------------------------------------


def _images(B: int, kw: dict, seed: int) -> torch.Tensor:
    """B random images in [-1, 1] of the size and channels in ``kw``."""
    S = kw["image_size"]
    return torch.rand(B, kw["channels"], S, S, generator=seeded(seed)) * 2 - 1  # (B, C, S, S)


class _Hooks:
    """Records every block call of a discriminator: (index, input, output), in call order."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []
        self.handles = []
        for i, block in enumerate(model.blocks):
            self.handles.append(block.register_forward_pre_hook(self._pre(i), with_kwargs=True))
            self.handles.append(block.register_forward_hook(self._post))

    def _pre(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            h = args[0] if args else kwargs.get("x")
            self.calls.append((i, h.detach() if isinstance(h, torch.Tensor) else None, None))

        return hook

    def _post(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        i, h, _ = self.calls[-1]
        self.calls[-1] = (i, h, out.detach() if isinstance(out, torch.Tensor) else None)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _close(a: object, b: torch.Tensor) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and torch.allclose(a.detach().float(), b.float(), atol=1e-5, rtol=1e-4)
    )


def _diagnose_h0(h0: torch.Tensor, ref: ViTDiscriminator, x: torch.Tensor) -> str | None:
    """Name what is wrong with the learner's h_0 (the first block's input), or None if it is right."""
    B = x.shape[0]
    N = ref.num_patches
    patches = ref.patch_embed(x)  # (B, N, D)
    cls = ref.cls_token.expand(B, -1, -1)  # (B, 1, D)
    pos_patches = ref.pos_embed()  # (N, D)
    pos = torch.cat([ref.cls_pos, pos_patches], dim=0)  # (N + 1, D)
    tokens = torch.cat([cls, patches], dim=1)  # (B, N + 1, D)
    right = tokens + pos  # (B, N + 1, D)
    if _close(h0, right):
        return None
    if not isinstance(h0, torch.Tensor):
        return f"self.blocks[0] should get the tokens h_0, a tensor of shape {tuple(right.shape)}"
    if h0.ndim != 3 or h0.shape[1] == N:
        return (
            f"the blocks see {h0.shape[1] if h0.ndim > 1 else '?'} tokens instead of N + 1 = {N + 1}: "
            "the CLS token is absent. Prepend it, h = torch.cat([self.cls_token.expand(B, -1, -1), h], dim=1)"
        )
    if h0.shape != right.shape:
        return f"the blocks' input h_0 has shape {tuple(h0.shape)} instead of {tuple(right.shape)}"
    # The CLS row is the one row that is the same for every image (x_cls + its position).
    same = [j for j in range(N + 1) if torch.allclose(h0[0, j], h0[-1, j], atol=1e-6)]
    if B > 1 and same == [N]:
        return (
            "the CLS token is appended at the END of the sequence: the course prepends it, so that it is "
            "token 0 (h_0 = [x_cls; E(x_p^1); ...] + E_pos) and the pooled token is h_L^0. Use "
            "torch.cat([cls, h], dim=1)"
        )
    known = {
        "E_pos is not added to h_0, the first block's input: without positions the transformer cannot tell "
        "where a patch is. Add torch.cat([self.cls_pos, self.pos_embed()], dim=0), shape (N + 1, D), to the "
        "tokens once, before the blocks": tokens,
        "E_pos is added twice to h_0: add torch.cat([self.cls_pos, self.pos_embed()], dim=0) once": tokens
        + 2 * pos,
        "self.cls_pos (the CLS token's own position in E_pos) is not added to the CLS token": tokens
        + torch.cat([torch.zeros_like(ref.cls_pos), pos_patches]),
        "E_pos is concatenated in the wrong order: the CLS token is token 0, so its position self.cls_pos "
        "must come first too, torch.cat([self.cls_pos, self.pos_embed()], dim=0)": tokens
        + torch.cat([pos_patches, ref.cls_pos]),
    }
    for message, wrong in known.items():
        if _close(h0, wrong):
            return message
    if _close(h0[:, :1], right[:, :1]):
        return (
            "the CLS token (token 0) is right, but the patch tokens differ from self.patch_embed(x) + "
            "self.pos_embed(): give self.patch_embed the images as they are (in [-1, 1], no rescaling), "
            "and add the patches' positions self.pos_embed() to them"
        )
    return (
        "the first block's input h_0 differs from [x_cls; patch_embed(x)] + E_pos: check the patch "
        "embedding, the CLS token (first) and E_pos = torch.cat([self.cls_pos, self.pos_embed()], dim=0)"
    )


def _check_chain(hooks: _Hooks, depth: int, pos: torch.Tensor) -> None:
    """Every block once, in order, each on the previous block's output."""
    order = [i for i, _, _ in hooks.calls]
    for k, i in enumerate(order):
        expect(i not in order[:k], f"self.blocks[{i}] runs a second time: apply every block once, in order")
        expect(i == k, f"self.blocks[{i}] runs before self.blocks[{k}]: apply every block once, in order")
    expect(
        len(order) == depth,
        f"only {len(order)} of the {depth} blocks run: apply every block of self.blocks once, in order, "
        "for block in self.blocks: h = block(h)",
    )
    h0 = hooks.calls[0][1]
    for i in range(1, depth):
        h, prev = hooks.calls[i][1], hooks.calls[i - 1][2]
        if _close(h, prev):
            continue
        expect(
            not _close(h, h0),
            f"self.blocks[{i}] gets h_0 instead of the previous block's output: update h in the loop, "
            "h = block(h)",
        )
        expect(
            prev is None or not _close(h, prev + pos),
            f"E_pos is added again before self.blocks[{i}]: add it once, to h_0, before the loop",
        )
        fail(f"self.blocks[{i}] does not get the output of self.blocks[{i - 1}]: h = block(h) in the loop")


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


def _linearity(learner: nn.Module, ref: ViTDiscriminator, x: torch.Tensor) -> str | None:
    """The logit is LINEAR in the head: scaling the head's weight and bias by -s flips every logit.

    A GELU/ReLU/softplus after the logit clips the negative side, a sigmoid/tanh bounds both. Needs raw
    (not spectrally normalised) head weights. Returns the message, or None if the logit is linear.
    """
    outs = {}
    with torch.no_grad():
        w, b = ref.head.weight.clone(), ref.head.bias.clone()  # (1, D), (1,)
        w0, b0 = learner.head.weight.clone(), learner.head.bias.clone()
        try:
            for s in (200.0, -200.0):
                for m in (ref, learner):
                    m.head.weight.copy_(s * w)
                    m.head.bias.copy_(s * b)
                outs[s] = learner(x).flatten(), ref(x)  # (B,), (B,)
        finally:
            for m, (ww, bb) in ((ref, (w, b)), (learner, (w0, b0))):
                m.head.weight.copy_(ww)
                m.head.bias.copy_(bb)
    (plus, ref_plus), (minus, _) = outs[200.0], outs[-200.0]
    top, got = float(ref_plus.abs().max()), float(torch.cat([plus, minus]).abs().max())
    if got <= min(0.1 * top, 10.0):
        return (
            f"with the head's weights scaled by +-200 your logits stay within +-{got:.2f} while the "
            f"reference's reach +-{top:.0f}: something bounds them (a sigmoid or tanh after the logit?). "
            + _NO_ACTIVATION
        )
    if not torch.allclose(minus, -plus, rtol=1e-4, atol=1e-3):
        return (
            "scaling the head's weights by -200 instead of +200 should flip the sign of every logit, but "
            f"yours go from [{float(plus.min()):.2f}, {float(plus.max()):.2f}] to [{float(minus.min()):.2f}, "
            f"{float(minus.max()):.2f}]: something clips them from below (a GELU or ReLU after the logit?). "
            + _NO_ACTIVATION
        )
    return None


def _diagnose_head(
    out: torch.Tensor, hL: torch.Tensor, ref: ViTDiscriminator, expected: torch.Tensor
) -> str | None:
    """Name what is wrong between h_L (right) and the logits ``out`` (wrong), if it is a known mistake."""
    head, norm = ref.head, ref.norm
    for name, act in _ACTIVATIONS.items():
        if _close(out, act(expected)):
            return f"there is a {name} after the final logit: {_NO_ACTIVATION}"
    if _close(out, -expected):
        return (
            "the logit's sign is flipped (negated): D(x) must be high for real images, as the losses of "
            "lesson 09 expect. Return self.head(y).squeeze(-1), without a minus"
        )
    pooled = {
        "the LAST token is pooled; the CLS token is token 0, so take h[:, 0]": norm(hL[:, -1]),
        "token 1, the first patch, is pooled instead of the CLS token, token 0: take h[:, 0]": norm(hL[:, 1]),
        "the tokens are mean-pooled; ViTGAN pools the CLS token, h[:, 0]": norm(hL.mean(dim=1)),
        "the tokens are mean-pooled after the norm; ViTGAN pools the CLS token, h[:, 0]": norm(hL).mean(1),
        "the final LayerNorm is missing: y = self.norm(h[:, 0]) (y = LN(h_L^0)) goes into the head": hL[:, 0],
    }
    for mistake, y in pooled.items():
        if _close(out, head(y).squeeze(-1)):
            return mistake
    return None


def _run_disc(learner: nn.Module, x: torch.Tensor, where: str) -> torch.Tensor:
    """The learner's forward on ``x``; the usual crashes of this exercise are named."""
    B = x.shape[0]
    with stage(where):
        try:
            return learner(x)
        except TypeError as e:
            if re.search(r"unsupported operand.*(PositionalEmbedding|Module)", str(e)):
                fail(
                    f"your forward raised TypeError: {e}. self.pos_embed is a module, not a tensor: call it, "
                    "self.pos_embed(), to get E_pos of the patches, shape (N, D)"
                )
            raise
        except RuntimeError as e:
            if re.search(
                rf"Sizes of tensors must match except in dimension 1\. Expected size 1 but got size {B}",
                str(e),
            ):
                fail(
                    f"torch.cat of the CLS token and the patch tokens fails for a batch of {B}: "
                    "self.cls_token has shape (1, 1, D), one token for all images. Expand it to the batch "
                    "first, cls = self.cls_token.expand(B, -1, -1), then torch.cat([cls, h], dim=1)"
                )
            raise


def _check_disc_grads(learner: nn.Module, ref: ViTDiscriminator, x: torch.Tensor) -> None:
    """Every parameter's gradient equals the reference's: nothing detached, nothing under no_grad."""
    learner.zero_grad(set_to_none=True)
    ref.zero_grad(set_to_none=True)
    learner(x).sum().backward()
    ref(x).sum().backward()
    params = dict(learner.named_parameters())
    dead = [n for n, p in params.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    expect(
        not dead,
        f"no gradient reaches {_dead_summary(dead)}: it is cut from the "
        "graph (.detach(), or computed under torch.no_grad()), or not used in your forward",
    )
    for name, p in ref.named_parameters():
        expect(
            _grads_close(params[name].grad, p.grad),
            f"the logits are right, but the gradient of {name} differs from the reference's: part of the "
            "forward is detached or computed under torch.no_grad()",
        )


@checker(
    "5.2",
    "the discriminator's forward",
    hints=FORWARD_HINTS,
    reference="vitgan_lite.discriminator:ViTDiscriminator.tokens",
)
def check_discriminator_forward(disc_cls: type[nn.Module]) -> None:
    """Check a learner's discriminator class (a ``ViTDiscriminator`` subclass with its own ``forward``)."""
    for seed, (kw, B, norm) in enumerate(DISC_CASES):
        ref = build_seeded(ViTDiscriminator, seed, **kw, spectral_norm=norm).eval()
        learner = build_seeded(disc_cls, seed, **kw, spectral_norm=norm).eval()
        _load_reference_weights(learner, ref, "your discriminator", _DISC_NAMES)
        x = _images(B, kw, seed)  # (B, C, S, S)
        where = (
            f"your discriminator ({kw['channels']} channels, depth {kw['depth']}, {norm} SN) on {B} images"
        )
        hooks = _Hooks(learner)
        try:
            with torch.no_grad():
                out = _run_disc(learner, x.clone(), where)
        finally:
            hooks.remove()
        expect(bool(hooks.calls), "your forward never runs self.blocks: apply each block in turn")
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (B, 1):
            fail(
                f"the logits have shape (B, 1) = {(B, 1)}: squeeze the last dimension, .squeeze(-1), "
                "to get (B,)"
            )
        if isinstance(out, torch.Tensor) and B == 1 and out.ndim == 0:
            fail(
                "for a batch of 1 your logits have shape (), not (1,): .squeeze() drops every axis of size "
                "1, the batch axis too. Use .squeeze(-1)"
            )
        expect_tensor(out, (B,), f"the discriminator on {B} images")
        with torch.no_grad():
            pos = torch.cat([ref.cls_pos, ref.pos_embed()], dim=0)  # (N + 1, D)
            if hooks.calls[0][0] == 0:  # else _check_chain names the order
                problem = _diagnose_h0(hooks.calls[0][1], ref, x)
                expect(problem is None, f"{problem}")
            _check_chain(hooks, len(ref.blocks), pos)
            hL = ref.tokens(x)  # (B, N + 1, D)
            expect_close(
                hooks.calls[-1][2],
                hL,
                "the last block's output differs from the reference although h_0 is right: apply "
                "every block of self.blocks, in order, each to the previous block's output",
            )
            expected = ref(x)  # (B,)
        if _close(out, expected):
            continue
        with torch.no_grad():
            problem = _diagnose_head(out, hL, ref, expected)
        if problem is None and norm == "none":
            problem = _linearity(learner, ref, _images(16, kw, 7))
        fail(
            problem
            or "the blocks' output h_L is right, but the logits differ from head(norm(h_L[:, 0])): pool the "
            "CLS token, apply self.norm, then self.head, and squeeze to shape (B,)"
        )
    # Backward: every parameter (the CLS token, its position, E_pos, every block, the norm, the head) gets
    # the reference's gradient.
    kw = DISC_CASES[0][0]
    ref = build_seeded(ViTDiscriminator, 11, **kw, spectral_norm="none")
    learner = build_seeded(disc_cls, 11, **kw, spectral_norm="none")
    _load_reference_weights(learner, ref, "your discriminator", _DISC_NAMES)
    _check_disc_grads(learner, ref, _images(3, kw, 11))


__all__ = ["check_discriminator_block", "check_discriminator_forward"]
