"""Checkers for lesson 08 (ViT generator): Exercise 8.1 ``GeneratorBlock`` and 8.2 the generator's forward.

Exercise 8.1: the learner passes a CLASS with the package's constructor signature
``GeneratorBlock(dim, num_heads, mlp_ratio, style_dim)`` whose submodules are named as the package's
(``norm1``, ``attn``, ``norm2``, ``mlp``). The checker builds it with small sizes (a single image, one
head, S != D, dim * mlp_ratio not whole), checks its parts (two distinct SLN(dim, style_dim), the
dot-product MultiHeadAttention, the MLP's int width and GELU), randomises its weights, copies them into
the reference (``vitgan_lite.generator.GeneratorBlock``) and, with hooks on the SLNs (each called as
norm(h, w) with the block's own w), compares the two: input left alone, deterministic, the values (named
against the mistakes public ViTGAN ports make: one SLN shared by both norms, the MLP branch's result
discarded, the residual adding the normalised input, a plain LayerNorm that ignores w, post-norm, a
missing residual, ...), the gradients of every parameter, of h and of w, float64 in and out, and the
zero-branch identity.

Exercise 8.2: the learner passes a CLASS, a ``ViTGenerator`` subclass whose ``forward(z)`` they wrote from
the reference's submodules (``mapping``, ``pos_embed``, ``blocks``, ``norm``, ``decoder``). The checker
copies the reference's weights in and, with hooks on the blocks, the final SLN and the decoder, compares
every step with the reference while it runs, with gradients on (Sec. 4.2: w = MLP(z), h_0 = E_pos,
h_l = Block_l(h_{l-1}, w), y = SLN(h_L, w), x^i = f_theta(E_fou, y^i), image = tanh(unpatchify(x))), so
that a mistake is named where it happens: z instead of w in the SLNs, w squeezed or detached, E_pos
missing, added twice or not broadcast over the batch, w added to the tokens, blocks not chained, the
final SLN skipped, the decoder modulated by w instead of y. After the decoder it asks two questions
apart, with the decoder's output replaced: WHERE each patch value goes (a ramp of distinct values, read
back by rank: a transposed grid, channels-last patches, a plain reshape) and WHAT it becomes (tanh, or no
tanh, a clamp, a sigmoid, tanh(x / 2), an activation before the tanh), so that an activation inside the
layout code is not reported as a layout error.

Shape legend: B batch, N tokens, D width, S style width (w), P patch size, G = H/P grid size, C channels.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.attention import L2MultiHeadAttention
from vitgan_lite.checks._core import checker, expect, expect_close, expect_tensor, fail, seeded, stage
from vitgan_lite.checks.discriminator import _check_mlp, _dead_summary, _grads_close, _linears, _mlp_rename
from vitgan_lite.generator import GeneratorBlock as RefBlock
from vitgan_lite.generator import ViTGenerator
from vitgan_lite.patches import unpatchify as ref_unpatchify


def _close(a: object, b: torch.Tensor) -> bool:
    """``a`` is a tensor of ``b``'s shape with ``b``'s values (float32 tolerance)."""
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and torch.allclose(a.detach().float(), b.float(), atol=1e-5, rtol=1e-4)
    )


def _arg(args: tuple, kwargs: dict, i: int, name: str) -> object:
    """Positional argument ``i`` of a module call, or its keyword ``name``."""
    return args[i] if len(args) > i else kwargs.get(name)


# ----------------------------------------------------------------------------------------------------
# Exercise 8.1: GeneratorBlock
# ----------------------------------------------------------------------------------------------------

# (B, N, D, num_heads, mlp_ratio, S): odd batches and token counts, one head, S != D, a single image, and
# dim * mlp_ratio = 7.5, not whole (the hidden width is int(7.5) = 7).
BLOCK_CASES = [(3, 5, 8, 2, 2.0, 6), (1, 4, 12, 3, 4.0, 12), (5, 7, 6, 1, 1.25, 4), (2, 9, 10, 5, 3.0, 7)]
_TOL = dict(atol=1e-4, rtol=1e-4)  # admits an SLN eps of 1e-6 instead of 1e-5

BLOCK_HINTS = (
    "Two pre-norm residual branches, attention first, then the MLP. Each branch normalises its input with "
    "its OWN SLN, called with the style, self.norm1(h, w) (h: tokens (B, N, D), w: style (B, S)), runs "
    "the branch and ADDS the result to the un-normalised h (h = h + ..., a new tensor, not +=); the MLP "
    "branch reads the updated h'. Parts: two SLN(dim, style_dim), MultiHeadAttention(dim, num_heads) "
    "(ordinary dot-product attention: L2 attention is the discriminator's), and Linear(dim, hidden) -> "
    "GELU -> Linear(hidden, dim) with hidden = int(dim * mlp_ratio).",
    "__init__:\n"
    "    hidden = int(...)\n"
    "    self.norm1 = SLN(..., ...)\n"
    "    self.attn = MultiHeadAttention(..., ...)\n"
    "    self.norm2 = SLN(..., ...)\n"
    "    self.mlp = nn.Sequential(OrderedDict(fc1=..., act=nn.GELU(), fc2=...))\n"
    "forward(h, w):\n"
    "    h = h + self.attn(self.norm1(..., ...))     # h' = MSA(SLN_1(h, w)) + h\n"
    "    h = h + ...                                 # out = MLP(SLN_2(h', w)) + h'\n"
    "    return h",
)

NAMES_HINT = (
    "name the submodules as the package does: self.norm1 and self.norm2 = two SLN(dim, style_dim), "
    "self.attn = MultiHeadAttention(dim, num_heads), self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear("
    "dim, hidden), act=nn.GELU(), fc2=nn.Linear(hidden, dim))) with hidden = int(dim * mlp_ratio)"
)
SHARED = (
    "one SLN instance is used for both norms of the block: the MLP branch must be normalised by its own "
    "SLN (its own gamma_2(w), beta_2(w)), self.norm2, not self.norm1 again. Each LayerNorm of the paper's "
    "eq. 5 is a separate SLN_l"
)
MLP_DISCARDED = (
    "the MLP branch's result is discarded: your block returns h' = h + MSA(SLN_1(h, w)). Keep it: "
    "h = h' + MLP(SLN_2(h', w)), and return that"
)
ATTN_DISCARDED = (
    "the attention branch is lost: the MLP's residual must add h' = h + MSA(SLN_1(h, w)), not the block's "
    "input h. Write h = h + attn(...), then h = h + mlp(...), updating h each time"
)
NORMALISED_RESIDUAL = (
    "the residual adds the normalised input (x = SLN(h, w); h' = x + MSA(x)). The paper's eq. 5 adds the "
    "UN-normalised one: h' = MSA(SLN(h, w)) + h, and h = MLP(SLN(h', w)) + h'. (The official ViTGAN code "
    "adds the normalised one; this course follows the paper, a standard pre-norm block)"
)
PLAIN_LN = (
    "the norms ignore w: a plain LayerNorm is used instead of SLN. Call the block's SLNs with the style, "
    "self.norm1(h, w) and self.norm2(h', w), so that z steers every block through gamma(w), beta(w)"
)
POST_NORM = (
    "the norms come after the residual sums (post-norm, h' = SLN(h + MSA(h))): ViTGAN's generator is "
    "pre-norm, h' = MSA(SLN(h, w)) + h: normalise the input of each branch, not the sum"
)
IN_PLACE = (
    "your block changed its input h in place (h += ...): the caller's tokens are overwritten, and autograd "
    "fails, because the SLN saved h for the backward pass. Write h = h + self.attn(self.norm1(h, w)), "
    "which makes a new tensor"
)
L2_IN_GENERATOR = (
    "block.attn is {kind}, ViTGAN's L2 attention: the generator uses the ordinary dot-product "
    "MultiHeadAttention(dim, num_heads) (lesson 03). The L2 attention is for the discriminator, whose "
    "Lipschitz bound it keeps; the generator needs none"
)
TORCH_MHA = (
    "block.attn is {kind}: use the package's MultiHeadAttention(dim, num_heads) from vitgan_lite.attention "
    "(weights qkv and proj, called as self.attn(x)), so that the checker can copy its weights"
)


def _build(cls: type[nn.Module], seed: int, *args, **kwargs) -> nn.Module:
    """Construct the learner's module under a fixed seed, leaving the caller's global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(*args, **kwargs)


def _build_block(cls: type[nn.Module], seed: int, D: int, heads: int, ratio: float, S: int) -> nn.Module:
    """The learner's block; a float hidden width is named, not a traceback."""
    where = f"GeneratorBlock({D}, {heads}, {ratio}, {S})"
    with stage(f"building {where}"):
        try:
            return _build(cls, seed, D, heads, ratio, S)
        except TypeError as e:
            if "float" in str(e) and ("size" in str(e) or "int" in str(e)):
                fail(
                    f"{where} raised {type(e).__name__}: {str(e)[:120]}. The MLP's hidden width is a float "
                    f"(dim * mlp_ratio = {D * ratio}), and nn.Linear needs an int: "
                    "hidden = int(dim * mlp_ratio)"
                )
            raise


def _check_norms(block: nn.Module, D: int, S: int) -> None:
    """Two distinct SLNs named norm1 and norm2, each a module of (h, w) with gamma and beta layers."""
    norm1, norm2 = getattr(block, "norm1", None), getattr(block, "norm2", None)
    expect(isinstance(norm1, nn.Module) and isinstance(norm2, nn.Module), NAMES_HINT)
    expect(
        norm1 is not norm2,
        "self.norm2 is the same SLN instance as self.norm1, so both norms of the block share one "
        "gamma(w), beta(w). Create two instances: self.norm1 = SLN(dim, style_dim) and self.norm2 = "
        "SLN(dim, style_dim)",
    )
    for name, norm in (("norm1", norm1), ("norm2", norm2)):
        expect(
            not isinstance(norm, nn.LayerNorm) and hasattr(norm, "gamma"),
            f"self.{name} is a plain LayerNorm ({type(norm).__name__}), which ignores w. Use a "
            "self-modulated LayerNorm, SLN(dim, style_dim) from vitgan_lite.modulation (lesson 06), "
            f"and call it as self.{name}(h, w)",
        )
        gamma = norm.gamma
        if isinstance(gamma, nn.Linear) and D != S:
            expect(
                not (gamma.in_features == D and gamma.out_features == S),
                f"self.{name}'s gamma maps {D} features to {S}, the wrong way round: SLN takes "
                "SLN(dim, style_dim), in that order (yours is SLN(style_dim, dim))",
            )
    shared = {id(p) for p in norm1.parameters()} & {id(p) for p in norm2.parameters()}
    expect(
        not shared,
        "self.norm1 and self.norm2 share parameters (the same gamma / beta layers): give each SLN its own, "
        "SLN(dim, style_dim) twice",
    )


def _check_attention(block: nn.Module) -> None:
    """The generator's attention is the package's dot-product MultiHeadAttention."""
    attn = getattr(block, "attn", None)
    expect(isinstance(attn, nn.Module), NAMES_HINT)
    if isinstance(attn, L2MultiHeadAttention) or hasattr(attn, "qk"):
        fail(L2_IN_GENERATOR.format(kind=type(attn).__name__))
    if isinstance(attn, nn.MultiheadAttention):
        fail(TORCH_MHA.format(kind="torch's nn.MultiheadAttention"))


def _check_mlp_width(block: nn.Module, D: int, ratio: float) -> None:
    mlp = getattr(block, "mlp", None)
    expect(isinstance(mlp, nn.Module), NAMES_HINT)
    fc, hidden = _linears(mlp), int(D * ratio)
    if len(fc) == 2:
        expect(
            fc[0].out_features == hidden,
            f"the MLP's hidden width is {fc[0].out_features}, expected int(dim * mlp_ratio) = int({D} * "
            f"{ratio}) = {hidden}: hidden = int(dim * mlp_ratio) (not rounded up, not a fixed 4 * dim)",
        )


def _reference_from(block: nn.Module, D: int, heads: int, ratio: float, S: int) -> nn.Module:
    """The package's block holding the learner's weights (an MLP's Linears may have other names)."""
    ref = _build(RefBlock, 0, D, heads, ratio, S)
    rename = _mlp_rename(block)
    back = {rename(k): k for k in ref.state_dict()}
    state = {back.get(k, k): v for k, v in block.state_dict().items()}
    problem = None
    try:
        ref.load_state_dict(state, strict=True)
    except RuntimeError as e:
        problem = "; ".join(s.strip() for s in str(e).split("\n\t")[1:3])
    if problem is not None:
        fail(
            f"your block's parameters do not match the package's GeneratorBlock({D}, {heads}, {ratio}, {S}): "
            f"{NAMES_HINT} ({problem})"
        )
    return ref.eval()


class _NormCalls:
    """Pre-hooks on the block's SLNs: each must be called as norm(h, w), with the block's own w."""

    def __init__(self, block: nn.Module, w: torch.Tensor) -> None:
        self.w = w
        self.handles = [
            getattr(block, name).register_forward_pre_hook(self._hook(name), with_kwargs=True)
            for name in ("norm1", "norm2")
        ]

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            h, w = _arg(args, kwargs, 0, "h"), _arg(args, kwargs, 1, "w")
            call = f"self.{name}(h, w)"
            if w is None:
                fail(f"self.{name} is called without w: an SLN is modulated by the style, call it as {call}")
            if isinstance(h, torch.Tensor) and isinstance(w, torch.Tensor):
                if h.ndim == 2 and w.ndim == 3:
                    fail(
                        f"self.{name} is called as norm(w, h): the arguments are swapped. The tokens come "
                        f"first, then the style: {call}"
                    )
                if w.ndim == 3:
                    fail(
                        f"self.{name} gets h as its style (a (B, N, D) tensor) instead of w (B, S): "
                        f"the SLN's gamma and beta are functions of the style w, {call}"
                    )
            expect(
                _close(w, self.w),
                f"self.{name} gets a style that is not the block's w: pass the w the block was given, "
                f"unchanged, {call}",
            )

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _diagnose_block(out: torch.Tensor, ref: nn.Module, h: torch.Tensor, w: torch.Tensor) -> str:
    """Name the mistake that turns (h, w) into ``out`` with the reference's submodules, if we know it."""
    attn, mlp = ref.attn, ref.mlp
    n1 = lambda x: ref.norm1(x, w)  # noqa: E731
    n2 = lambda x: ref.norm2(x, w)  # noqa: E731
    ln = lambda x: F.layer_norm(x, (x.shape[-1],))  # noqa: E731  a LayerNorm that never sees w

    def chain(first: Callable, second: Callable) -> torch.Tensor:
        h1 = h + first(h)  # (B, N, D)
        return h1 + second(h1)

    def normalised_residual() -> torch.Tensor:
        x = n1(h)  # (B, N, D)
        h1 = x + attn(x)
        x = n2(h1)
        return x + mlp(x)

    def post_norm() -> torch.Tensor:
        h1 = n1(h + attn(h))  # (B, N, D)
        return n2(h1 + mlp(h1))

    h1 = h + attn(n1(h))  # (B, N, D): the correct h'
    a1 = attn(n1(h))  # (B, N, D): h' without its residual
    candidates: list[tuple[Callable[[], torch.Tensor], str]] = [
        (lambda: chain(lambda x: attn(n1(x)), lambda x: mlp(n1(x))), SHARED),
        (lambda: chain(lambda x: attn(n2(x)), lambda x: mlp(n2(x))), SHARED),
        (lambda: h1, MLP_DISCARDED),
        (lambda: h + mlp(n2(h1)), ATTN_DISCARDED),
        (lambda: h + mlp(n2(h)), ATTN_DISCARDED),
        (normalised_residual, NORMALISED_RESIDUAL),
        (lambda: chain(lambda x: attn(ln(x)), lambda x: mlp(ln(x))), PLAIN_LN),
        (post_norm, POST_NORM),
        (
            lambda: a1 + mlp(n2(a1)),
            "the residual (skip) connection around the attention is missing: "
            "h' = h + self.attn(self.norm1(h, w)), not self.attn(self.norm1(h, w)) alone",
        ),
        (
            lambda: mlp(n2(h1)),
            "the residual (skip) connection around the MLP is missing: "
            "return h' + self.mlp(self.norm2(h', w)), not the MLP's output alone",
        ),
        (
            lambda: chain(lambda x: attn(n2(x)), lambda x: mlp(n1(x))),
            "norm1 and norm2 are swapped: self.norm1 goes before the attention, self.norm2 before the MLP",
        ),
        (
            lambda: chain(lambda x: mlp(n2(x)), lambda x: attn(n1(x))),
            "the MLP runs before the attention: the block is attention first (h' = h + self.attn(...)), then "
            "the MLP",
        ),
        (
            lambda: chain(attn, lambda x: mlp(n2(x))),
            "the attention reads h itself, with no SLN: pre-norm normalises the branch's input, "
            "h = h + self.attn(self.norm1(h, w))",
        ),
        (
            lambda: h1 + mlp(n2(h)),
            "the MLP branch reads the block's input h (both branches in parallel) instead of h' = h + "
            "self.attn(self.norm1(h, w)): update h first, then h = h + self.mlp(self.norm2(h, w))",
        ),
    ]
    with torch.no_grad():
        for candidate, message in candidates:
            if torch.allclose(out, candidate(), **_TOL):
                return message
    return (
        "compute, in this order, h' = h + self.attn(self.norm1(h, w)) and h' + self.mlp(self.norm2(h', w)) "
        "(paper eq. 5: pre-norm, residuals adding the un-normalised input, one SLN per branch)"
    )


def _check_block_grads(
    block: nn.Module, ref: nn.Module, h: torch.Tensor, w: torch.Tensor, g: torch.Tensor, where: str
) -> None:
    """Gradients of every parameter, of h and of w equal the reference's (no detach, no in-place)."""
    block.zero_grad(set_to_none=True)
    ref.zero_grad(set_to_none=True)
    hs, ws = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    hr, wr = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    with stage(f"the backward pass through {where}"):
        try:
            (block(hs, ws) * g).sum().backward()
        except RuntimeError as e:
            if "modified by an inplace operation" in str(e):
                fail(f"the backward pass fails: a tensor saved for it was changed in place. {IN_PLACE}")
            raise
    (ref(hr, wr) * g).sum().backward()
    params = dict(block.named_parameters())
    dead = [n for n, p in params.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    expect(
        not dead,
        f"{where}: no gradient reaches {_dead_summary(dead)}: that branch is cut from the graph (.detach(), "
        "or computed under torch.no_grad()), or never used. Let gradients flow through both branches",
    )
    expect(
        ws.grad is not None and bool(ws.grad.abs().sum() > 0),
        f"{where}: no gradient reaches w: pass w itself (not w.detach()) to both SLNs",
    )
    expect(
        _grads_close(hs.grad, hr.grad),
        f"{where}: the output is right, but the gradient with respect to h differs from the reference's: "
        "the skip path is cut (h.detach() + ...?). Gradients must flow through the skip path unchanged",
    )
    expect(
        _grads_close(ws.grad, wr.grad),
        f"{where}: the output is right, but the gradient with respect to w differs from the reference's: "
        "one SLN gets a detached w. Pass w itself to both SLNs",
    )
    for name, p in ref.named_parameters():
        own = params.get(_mlp_rename(block)(name))
        expect(
            own is not None and _grads_close(own.grad, p.grad),
            f"{where}: the output is right, but the gradient of {name} differs from the reference's: part "
            "of a branch is detached or computed under torch.no_grad()",
        )


@checker("8.1", "GeneratorBlock", hints=BLOCK_HINTS, reference="vitgan_lite.generator:GeneratorBlock")
def check_generator_block(GeneratorBlock: type[nn.Module]) -> None:
    """Check a learner's ``GeneratorBlock(dim, num_heads, mlp_ratio, style_dim)`` class."""
    for seed, (B, N, D, heads, ratio, S) in enumerate(BLOCK_CASES):
        where = f"GeneratorBlock({D}, {heads}, {ratio}, {S}) on h {(B, N, D)}, w {(B, S)}"
        block = _build_block(GeneratorBlock, seed, D, heads, ratio, S)
        _check_norms(block, D, S)
        _check_attention(block)
        _check_mlp_width(block, D, ratio)
        with torch.no_grad():  # move every weight away from its init, so that every part matters
            for i, p in enumerate(block.parameters()):
                p.add_(0.2 * torch.randn(p.shape, generator=seeded(100 + i)))
        ref = _reference_from(block, D, heads, ratio, S)
        h = torch.randn(B, N, D, generator=seeded(seed))  # (B, N, D)
        w = torch.randn(B, S, generator=seeded(10 + seed))  # (B, S)

        calls = _NormCalls(block, w)
        try:
            with torch.no_grad(), stage(where):
                h_in = h.clone()
                out = block(h_in, w.clone())
                again = block(h.clone(), w.clone())
        finally:
            calls.remove()
        expect(torch.equal(h_in, h), IN_PLACE)
        out = expect_tensor(out, (B, N, D), where)
        expect(
            not isinstance(again, torch.Tensor) or torch.equal(out, again),
            f"{where} gives different outputs for the same input: something random runs in forward (a "
            "Dropout with p > 0?). ViTGAN's generator block has none: remove it",
        )
        _check_mlp(block, ref, 3 * torch.randn(B, N, D, generator=seeded(300 + seed)))
        with torch.no_grad():
            expected = ref(h, w)  # (B, N, D)
            if not torch.allclose(out, expected, **_TOL):
                w2 = torch.randn(B, S, generator=seeded(20 + seed))  # (B, S)
                expect(
                    not torch.allclose(block(h, w2), out, atol=1e-6),
                    f"{where}: the output does not change with w: {PLAIN_LN}",
                )
                fail(f"{where}: {_diagnose_block(out.detach(), ref, h, w)}")

        # Backward: every parameter, h and w (z reaches the image only through the SLNs' gamma(w), beta(w)).
        g = torch.randn(B, N, D, generator=seeded(30 + seed))  # (B, N, D)
        _check_block_grads(block, ref, h, w, g, where)

    # float64 in, float64 out: the block keeps the dtype it is given.
    block64, ref64 = block.double(), ref.double()
    h64, w64 = h.double(), w.double()
    with stage("your block, converted with .double(), on float64 h and w"):
        try:
            out64 = block64(h64, w64)
        except RuntimeError as e:
            if re.search(r"dtype|scalar type|Float|Double", str(e)):
                fail(
                    f"your block fails on float64 input (after block.double()): {str(e)[:150]}. Something "
                    "casts h or w to float32 (.float()?): keep the input's dtype"
                )
            raise
    expect(
        out64.dtype == torch.float64,
        f"given float64 h and w (and block.double()), your block returns {out64.dtype}: it casts to float32 "
        "(.float()?). Keep the input's dtype",
    )
    expect_close(out64, ref64(h64, w64), "on float64 input your block differs from the reference", **_TOL)

    # Defining property: pre-norm residual blocks. With both branches' output layers at zero the block is
    # the identity, h -> h exactly (a block that adds SLN(h, w) instead of h would return the normalised h).
    block = _build(GeneratorBlock, 7, 8, 2, 2.0, 6)
    silent = copy.deepcopy(block)
    with torch.no_grad():
        for layer in (silent.attn.proj, _linears(silent.mlp)[-1]):
            layer.weight.zero_()
            layer.bias.zero_()
        h = torch.randn(3, 5, 8, generator=seeded(40))  # (B, N, D)
        w = torch.randn(3, 6, generator=seeded(41))  # (B, S)
        expect_close(
            silent(h, w),
            h,
            "with the attention's and the MLP's output layers set to zero, the block should return h "
            f"unchanged (each residual adds the un-normalised input): {NORMALISED_RESIDUAL}",
            atol=1e-6,
            rtol=0,
        )


# ----------------------------------------------------------------------------------------------------
# Exercise 8.2: the generator's forward
# ----------------------------------------------------------------------------------------------------

# Small generators: (kwargs, B). The first has latent_dim = style_dim = dim, so that z fed to the SLNs and
# w fed to the decoder run without a shape error and are named from their values; then S != D, one
# channel, an odd 3 x 3 token grid, a single image, three blocks.
_GEN_KEYS = ("image_size", "patch_size", "channels", "latent_dim", "style_dim", "mapping_layers", "dim",
             "depth", "num_heads", "mlp_ratio", "fourier_dim", "decoder_dim")  # fmt: skip
GEN_CASES = [
    (dict(zip(_GEN_KEYS, (8, 4, 3, 8, 8, 2, 8, 2, 2, 2.0, 8, 8))), 3),
    (dict(zip(_GEN_KEYS, (12, 4, 1, 6, 10, 1, 12, 1, 3, 1.5, 6, 10))), 2),
    (dict(zip(_GEN_KEYS, (8, 2, 2, 5, 7, 3, 6, 3, 1, 4.0, 6, 5))), 1),
]

_GEN_NAMES = (
    "subclass vitgan_lite.generator.ViTGenerator and only override forward, so that the checker can copy "
    "the reference's weights into your generator"
)
_H0 = "h = self.pos_embed().unsqueeze(0).expand(B, -1, -1)"
_ASSEMBLE = (
    "form the image with the package's unpatchify(patches, self.patch_size, self.image_size, "
    "self.channels) (lesson 01), which reads the tokens row-major and each patch vector as (C, P, P)"
)

Z_NOT_W = (
    "gets z instead of w: the SLNs are modulated by the style w = self.mapping(z) (lesson 06), not by the "
    "raw latent. Compute w = self.mapping(z) once and pass that w to every block and to the final SLN"
)
STYLE_WRONG = (
    "gets a style that is not w = self.mapping(z): compute w = self.mapping(z) once and pass that same w, "
    "unchanged, to every block and to the final SLN self.norm"
)
POS_UNBATCHED = (
    "the first block gets E_pos of shape (N, D), without a batch dimension: the position tokens are the "
    f"same for every image, but every image needs its own copy of them. Broadcast E_pos over the batch, {_H0}"
)
POS_NOT_BROADCAST = (
    "the first block gets E_pos with batch size 1 for a batch of {B} images: E_pos is not broadcast over "
    f"the batch, and each SLN needs one token sequence per style w. Expand it, {_H0}"
)
STYLE_IN_TOKENS = (
    "the first block's input is E_pos plus something that changes from image to image (w or z added to "
    "the tokens?): ViTGAN's h_0 = E_pos alone, the same for every image, and z steers the image only "
    f"through w and the SLNs. Start from {_H0}"
)
NO_POS = (
    "the first block's input h_0 is not the position embedding: E_pos is not used. ViTGAN's generator "
    "has no image and no noise tokens, its only input tokens are the positions, h_0 = E_pos (Sec. 4.2): "
    f"{_H0}, not zeros, noise or w"
)
BLOCK_ORDER = (
    "apply every block of self.blocks once, in order, each to the previous block's output: "
    "for block in self.blocks: h = block(h, w)"
)
NOT_CHAINED = (
    "self.blocks[{l}] gets h_0 instead of the previous block's output: update h in the loop, "
    "h = block(h, w), so that the blocks form the chain h_0 -> h_1 -> ... -> h_L"
)
FINAL_SLN_SKIPPED = (
    "the decoder gets h_L, the last block's output: the final SLN is skipped (or its result unused). "
    "ViTGAN normalises and modulates the tokens once more before decoding, y = SLN(h_L, w): "
    "y = self.norm(h, w), then self.decoder(y)"
)
DECODER_W = (
    "the patch decoder is modulated by w instead of the token outputs y: every patch would get the same "
    "modulation and the image would be one patch repeated. Each patch's SIREN is modulated by its own "
    "token, x^i = f_theta(E_fou, y^i): patches = self.decoder(y) with y = self.norm(h, w), shape (B, N, D)"
)
NO_TANH = (
    "the pixels are not squashed into [-1, 1]: the reference ends with torch.tanh, which gives the "
    "images the value range of the real ones (lesson 00). Return torch.tanh(x)"
)
CLAMP = (
    "the image is clamped to [-1, 1] instead of squashed by tanh: a clamp has zero gradient wherever a "
    "pixel is outside [-1, 1], so those pixels stop learning. Return torch.tanh(x), as the reference does"
)
RANGE_01 = (
    "the pixels end in [0, 1] (a sigmoid, or a tanh shifted to [0, 1]), but the real images are in [-1, 1]: "
    "return torch.tanh(x)"
)
TANH_TWICE = "tanh is applied twice: squash the assembled image once, return torch.tanh(x)"
TRANSPOSED_GRID = (
    "the patches are assembled in the wrong order: the token grid is transposed (token 1 lands below "
    "token 0 instead of to its right). The tokens are row-major, like E_pos's coordinates: " + _ASSEMBLE
)
TRANSPOSED_IMAGE = "the image is transposed (rows and columns swapped): " + _ASSEMBLE
PLAIN_RESHAPE = (
    "a plain reshape to (B, C, H, W) cuts the patch vectors into strips of the image, not P x P squares: "
    + _ASSEMBLE
)
CHANNELS_LAST = (
    "each patch vector is read channels-last, as (P, P, C), but the decoder's patches are channels-first, "
    "(C, P, P): " + _ASSEMBLE
)
WRONG_PLACES = "your image has the right pixel values, but in the wrong places: " + _ASSEMBLE


NO_GRAD = (
    "{where} gets {what} with no gradient: it is detached (.detach()) or computed under torch.no_grad(), so "
    "{lost} never learns. Let gradients flow: no .detach() and no torch.no_grad() in forward"
)


class _ForwardTrace:
    """Hooks on the learner's generator that compare each step with the reference's while it runs.

    The reference's intermediate values (w, h_0, ..., h_L, y) are computed first; then every call of a
    block, of the final SLN and of the decoder is checked on entry, so that a mistake is named where it
    happens, before a wrong shape can crash deep inside a submodule. The learner's forward runs with
    gradients on, so that a step cut from the graph (detached, or under ``torch.no_grad()``) is named too.
    """

    def __init__(self, model: nn.Module, ref: nn.Module, z: torch.Tensor) -> None:
        with torch.no_grad():
            self.z, self.w = z, ref.mapping(z)  # (B, latent_dim), (B, S)
            B = z.shape[0]
            self.pos = ref.pos_embed()  # (N, D)
            h = self.pos.unsqueeze(0).expand(B, -1, -1)  # (B, N, D)
            self.hs = [h]  # h_0, h_1, ..., h_L
            for block in ref.blocks:
                h = block(h, self.w)  # (B, N, D)
                self.hs.append(h)
            self.y = ref.norm(h, self.w)  # (B, N, D)
        self.depth = len(ref.blocks)
        self.blocks_run: list[int] = []
        self.patches: torch.Tensor | None = None
        blocks = getattr(model, "blocks", None)
        expect(
            isinstance(blocks, nn.ModuleList) and len(blocks) == self.depth,
            f"your generator should keep the reference's self.blocks: {_GEN_NAMES}",
        )
        self.handles = [
            blocks[i].register_forward_pre_hook(self._block_hook(i), with_kwargs=True)
            for i in range(self.depth)
        ]
        self.handles += [
            model.norm.register_forward_pre_hook(self._norm_hook, with_kwargs=True),
            model.decoder.register_forward_pre_hook(self._decoder_hook, with_kwargs=True),
            model.decoder.register_forward_hook(self._decoder_out),
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def _check_style(self, w: object, where: str) -> None:
        """The style given to an SLN must be w = mapping(z): name z, then any other tensor."""
        if _close(w, self.z):
            fail(f"{where} {Z_NOT_W}")
        if isinstance(w, torch.Tensor) and w.shape != self.w.shape and w.numel() == self.w.numel():
            if _close(w.reshape(self.w.shape), self.w):
                fail(
                    f"{where} gets w of shape {tuple(w.shape)} for a batch of {self.w.shape[0]}, not "
                    f"{tuple(self.w.shape)}: .squeeze() drops every axis of size 1, for a batch of 1 the "
                    "batch axis too. Keep w = self.mapping(z) as it is, (B, S)"
                )
        expect(_close(w, self.w), f"{where} {STYLE_WRONG}")
        expect(
            w.requires_grad or not torch.is_grad_enabled(),  # type: ignore[union-attr]
            NO_GRAD.format(where=where, what="w", lost="the mapping network"),
        )

    def _check_h0(self, h: object) -> None:
        B, (N, D) = self.z.shape[0], self.pos.shape
        if not isinstance(h, torch.Tensor):
            fail(f"self.blocks[0] should get a tensor h_0 of shape {(B, N, D)}: {_H0}")
        grad = h.requires_grad
        h = h.detach()
        if h.ndim == 2:
            fail(POS_UNBATCHED)
        if h.ndim == 3 and h.shape[0] == 1 and B > 1 and _close(h[0], self.pos):
            fail(POS_NOT_BROADCAST.format(B=B))
        expect(
            tuple(h.shape) == (B, N, D),
            f"the first block's input h_0 has shape {tuple(h.shape)} instead of (B, N, D) = {(B, N, D)}: "
            + _H0,
        )
        if _close(h, self.hs[0]):
            expect(
                grad or not torch.is_grad_enabled(),
                "h_0 has no gradient: self.pos_embed() is computed under torch.no_grad() or detached, "
                f"so E_pos never learns its frequencies. {_H0}, with gradients on",
            )
            return
        if _close(h, 2 * self.hs[0]):
            fail(
                f"E_pos is added twice: the first block gets 2 E_pos. Add it once, {_H0}, and not in the loop"
            )
        extra = h - self.pos  # (B, N, D): what was added to E_pos
        if _close(extra, extra[:, :1].expand_as(extra)) and not _close(extra, torch.zeros_like(extra)):
            fail(STYLE_IN_TOKENS)
        fail(NO_POS)

    def _block_hook(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            where = f"self.blocks[{i}]"
            self._check_style(_arg(args, kwargs, 1, "w"), where)
            nxt = len(self.blocks_run)
            expect(i >= nxt, f"{where} runs a second time: {BLOCK_ORDER}")
            expect(i == nxt, f"{where} runs before self.blocks[{nxt}]: {BLOCK_ORDER}")
            self.blocks_run.append(i)
            h = _arg(args, kwargs, 0, "h")
            if i == 0:
                self._check_h0(h)
            elif not _close(h, self.hs[i]):
                expect(not _close(h, self.hs[0]), NOT_CHAINED.format(l=i))
                expect(
                    not _close(h, self.hs[i] + self.pos),
                    f"E_pos is added again before {where}: h_0 = E_pos is the only place it goes in. Add it "
                    "once, before the loop, and write h = block(h, w) in the loop",
                )
                fail(f"{where} does not get the output of self.blocks[{i - 1}]: {BLOCK_ORDER}")

        return hook

    def _check_all_blocks_ran(self, before: str) -> None:
        expect(
            bool(self.blocks_run),
            f"no block of self.blocks ran before {before} (or they ran as block.forward(h, w), which the "
            f"checker cannot see): {BLOCK_ORDER}",
        )
        expect(
            len(self.blocks_run) == self.depth,
            f"only {len(self.blocks_run)} of the {self.depth} blocks ran before {before}: {BLOCK_ORDER}",
        )

    def _norm_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self._check_style(_arg(args, kwargs, 1, "w"), "the final SLN self.norm")
        self._check_all_blocks_ran("the final SLN")
        expect(
            _close(_arg(args, kwargs, 0, "h"), self.hs[-1]),
            "the final SLN should get the last block's output h_L: y = self.norm(h, w) after the loop",
        )

    def _decoder_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        y = _arg(args, kwargs, 0, "y")
        B, N = self.y.shape[:2]
        if _close(y, self.w) or _close(y, self.w.unsqueeze(1).expand(B, N, -1)):
            fail(DECODER_W)
        self._check_all_blocks_ran("the decoder")
        if _close(y, self.hs[-1]):
            fail(FINAL_SLN_SKIPPED)
        expect(
            _close(y, self.y),
            "the decoder should get the final tokens y = self.norm(h_L, w), shape (B, N, D), one per patch",
        )
        expect(
            y.requires_grad or not torch.is_grad_enabled(),  # type: ignore[union-attr]
            NO_GRAD.format(where="the decoder", what="y", lost="nothing before the decoder"),
        )

    def _decoder_out(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        self.patches = out.detach()  # (B, N, C*P*P)


def _assemble(p: torch.Tensor, P: int, S: int, C: int, perm: tuple[int, ...], last: bool = False):
    """Assemble patches (B, N, C*P*P) with a given permute; ``last`` reads each patch as (P, P, C)."""
    B, G = p.shape[0], S // P
    x = p.reshape(B, G, G, P, P, C) if last else p.reshape(B, G, G, C, P, P)
    return x.permute(*perm).reshape(B, C, S, S)  # (B, C, H, W)


def _layouts(P: int, S: int, C: int) -> list[tuple[Callable[[torch.Tensor], torch.Tensor], str | None]]:
    """The right assembly of patches (B, N, C*P*P) into images (B, C, H, W), and the known wrong ones."""
    return [
        (lambda p: ref_unpatchify(p, P, S, C), None),
        (lambda p: _assemble(p, P, S, C, (0, 3, 2, 4, 1, 5)), TRANSPOSED_GRID),
        (lambda p: ref_unpatchify(p, P, S, C).transpose(-2, -1), TRANSPOSED_IMAGE),
        (lambda p: p.reshape(p.shape[0], C, S, S), PLAIN_RESHAPE),
        (lambda p: _assemble(p, P, S, C, (0, 5, 1, 3, 2, 4), last=True), CHANNELS_LAST),
    ]


_UNPATCHIFY = "unpatchify(patches, self.patch_size, self.image_size, self.channels)"


_BEFORE_TANH = (
    "a {name} is applied to the patches or pixels before the tanh: {why}. Nothing goes between the "
    "decoder and the tanh: return torch.tanh(unpatchify(patches, ...))"
)
# Elementwise maps f(patch value) -> pixel value: the reference's, then the known wrong ones.
_SQUASHES: list[tuple[Callable[[torch.Tensor], torch.Tensor], str | None]] = [
    (torch.tanh, None),
    (lambda t: t, NO_TANH),
    (lambda t: t.clamp(-1, 1), CLAMP),
    (torch.sigmoid, RANGE_01),
    (lambda t: (torch.tanh(t) + 1) / 2, RANGE_01),
    (lambda t: torch.tanh(torch.tanh(t)), TANH_TWICE),
    (
        lambda t: torch.tanh(t / 2),
        "the pixels are tanh(x / 2) = 2 * sigmoid(x) - 1, not tanh(x): the same range with half the slope. "
        "Return torch.tanh(x)",
    ),
    (lambda t: -torch.tanh(t), "the image is negated, -tanh(x): return torch.tanh(x)"),
    (
        lambda t: torch.tanh(F.relu(t)),
        _BEFORE_TANH.format(name="ReLU", why="every negative value becomes 0, so no pixel is darker than 0"),
    ),
    (
        lambda t: torch.tanh(F.gelu(t)),
        _BEFORE_TANH.format(name="GELU", why="it squeezes the negative values towards 0"),
    ),
    (
        lambda t: torch.tanh(F.leaky_relu(t, 0.2)),
        _BEFORE_TANH.format(name="LeakyReLU", why="it shrinks the negative values"),
    ),
    (
        F.relu,
        "the pixels go through a ReLU instead of tanh: every negative value becomes 0 and the positive ones "
        "are unbounded. Return torch.tanh(x)",
    ),
]


def _probe(learner: nn.Module, z: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """The learner's image when its decoder outputs ``patches``: what the code after the decoder does."""
    handle = learner.decoder.register_forward_hook(lambda m, args, out: patches.clone())
    try:
        with torch.no_grad():
            out = learner(z.clone())
    finally:
        handle.remove()
    return out[0] if isinstance(out, tuple) else out


def _squash_mistake(pixels: torch.Tensor, values: torch.Tensor) -> str | None | bool:
    """What maps the patch ``values`` to the ``pixels``: None for tanh, a mistake, or False if unknown."""
    for squash, mistake in _SQUASHES:
        if _close(pixels, squash(values)):
            return mistake
    return False


def _diagnose_image(
    learner: nn.Module, z: torch.Tensor, shape: tuple[int, ...], P: int, S: int, C: int
) -> str:
    """Name what the learner's code after the decoder does wrong: first WHERE the values go, then WHAT.

    Layout: the decoder's output is replaced by a ramp of distinct positive values; any increasing (or
    decreasing) elementwise map keeps their order, so the ranks of the image's pixels tell where each patch
    value went, whatever the squashing. Squashing: with that layout undone, the decoder's output is
    replaced by values in [-3, 3] and each pixel is compared with tanh of its patch value.
    """
    n = int(torch.tensor(shape).prod())
    ramp = torch.linspace(0.05, 0.95, n).reshape(shape)  # (B, N, C*P*P), increasing in memory order
    out = _probe(learner, z, ramp)
    if out.numel() != n:
        return f"your image has {out.numel()} values for {n} patch values: " + _ASSEMBLE
    out = out.flatten()  # (B*C*H*W,)
    order = out.argsort()  # order[k]: where the k-th smallest pixel is
    if bool((out[order].diff() <= 0).any()):  # ties: not one pixel per patch value, the layout is unreadable
        return (
            "the decoder's patches are right but the images differ from the reference: form the image with "
            + _UNPATCHIFY
            + " and return torch.tanh of it"
        )
    # Where patch value k lands: a known layout (read in either direction), or the one the ranks show.
    layout_mistake: str | None = "WRONG_PLACES"
    positions = [order, order.flip(0)]
    for layout, mistake in _layouts(P, S, C):
        ref_order = layout(ramp).flatten().argsort()  # (n,)
        if torch.equal(order, ref_order) or torch.equal(order.flip(0), ref_order):
            layout_mistake, positions = mistake, [ref_order]
            break
    values = torch.rand(shape, generator=seeded(5)) * 6 - 3  # (B, N, C*P*P) in [-3, 3]
    pixels = _probe(learner, z, values).flatten()  # (n,)
    flat = values.flatten()
    squash_mistake: str | None | bool = False
    for position in positions:
        squash_mistake = _squash_mistake(pixels[position], flat)
        if squash_mistake is not False:
            break
    if squash_mistake is False:
        if layout_mistake == "WRONG_PLACES":  # neither where nor what is known
            return (
                "the decoder's patches are right but the images differ from the reference: form the image "
                f"with {_UNPATCHIFY} and return torch.tanh of it"
            )
        i = int((flat + 2).abs().argmin())  # a patch value near -2
        got = float(pixels[positions[0]][i])
        squash_mistake = (
            f"the pixels are not tanh of the decoder's values: a patch value of {float(flat[i]):.2f} became "
            f"{got:.3f}, tanh gives {float(torch.tanh(flat[i])):.3f}. Apply torch.tanh once to the assembled "
            "image, and nothing else"
        )
    if layout_mistake == "WRONG_PLACES":
        layout_mistake = (
            WRONG_PLACES
            if squash_mistake is None
            else "the pixels are in the wrong places (not where unpatchify puts them): " + _ASSEMBLE
        )
    return "; and ".join(m for m in (layout_mistake, squash_mistake) if isinstance(m, str))


def _generator_pair(gen_cls: type[nn.Module], kw: dict, seed: int) -> tuple[nn.Module, nn.Module]:
    """The reference and the learner's generator built with ``kw``, holding the same weights."""
    ref = _build(ViTGenerator, seed, **kw).eval()
    learner = _build(gen_cls, seed, **kw).eval()
    state, own = ref.state_dict(), learner.state_dict()
    missing, extra = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    expect(
        not missing and not extra,
        f"your generator does not have the reference's sub-modules (missing {missing[:4]}, unexpected "
        f"{extra[:4]}): {_GEN_NAMES}",
    )
    bad = [k for k, v in state.items() if own[k].shape != v.shape]
    expect(not bad, f"your generator's {bad[:3]} have other shapes than the reference's: {_GEN_NAMES}")
    learner.load_state_dict(state)
    return ref, learner


def _run_generator(learner: nn.Module, z: torch.Tensor, kw: dict, where: str) -> object:
    """The learner's forward on ``z``; the usual crashes of this exercise are named."""
    S, P, C = kw["image_size"], kw["patch_size"], kw["channels"]
    with stage(where):
        try:
            return learner(z)
        except (TypeError, AttributeError) as e:
            if "PositionalEmbedding" in str(e):
                fail(
                    f"your forward raised {type(e).__name__}: {e}. self.pos_embed is a module, not a tensor: "
                    f"call it, self.pos_embed(), to get E_pos, shape (N, D). {_H0}"
                )
            raise
        except ValueError as e:
            text = str(e)
            found = re.search(r"for a (\d+)x\d+ image with (\d+) channels and patch size (\d+)", text)
            if found and int(found.group(2)) != C and (int(found.group(1)), int(found.group(3))) == (S, P):
                fail(
                    f"your forward raised ValueError: {text[:160]}. The number of channels is hard-coded "
                    f"({found.group(2)}) while this generator makes {C}-channel images: pass self.channels, "
                    + _UNPATCHIFY
                )
            swapped = re.search(rf"image height {P} is not divisible by patch size {S}\b", text)
            if swapped or (found and (int(found.group(1)), int(found.group(3))) == (P, S)):
                fail(
                    f"your forward raised ValueError: {text[:160]}. unpatchify's arguments are in the wrong "
                    f"order: it is {_UNPATCHIFY}, the patch size first, then the image size"
                )
            if found:
                fail(
                    f"your forward raised ValueError: {text[:160]}. Give unpatchify the generator's own "
                    f"sizes, {_UNPATCHIFY}, not hard-coded ones"
                )
            raise


FORWARD_HINTS = (
    "w = self.mapping(z) once, (B, S). h_0 = E_pos: self.pos_embed() is (N, D), the same for every image, "
    "so give it a batch axis and expand it to (B, N, D). Every block in turn with that same w, h = "
    "block(h, w). Then the final SLN y = self.norm(h, w); the decoder turns each token into its patch, "
    "self.decoder(y) (B, N, C*P*P); unpatchify(patches, self.patch_size, self.image_size, self.channels) "
    "lays the patches out row-major into (B, C, H, W); torch.tanh squashes the image into [-1, 1]. No "
    ".detach(), no torch.no_grad(), nothing hard-coded.",
    "w = self.mapping(...)                                  # (B, S)\n"
    "h = self.pos_embed().unsqueeze(0).expand(..., -1, -1)  # (B, N, D): h_0 = E_pos\n"
    "for block in self.blocks:\n"
    "    h = block(..., ...)\n"
    "y = self.norm(..., ...)                                # (B, N, D)\n"
    "patches = self.decoder(...)                            # (B, N, C*P*P)\n"
    "x = unpatchify(patches, ..., ..., ...)                 # (B, C, H, W)\n"
    "return torch.tanh(...)",
)


@checker(
    "8.2",
    "the generator's forward",
    hints=FORWARD_HINTS,
    reference="vitgan_lite.generator:ViTGenerator.synthesize",
)
def check_generator_forward(gen_cls: type[nn.Module]) -> None:
    """Check a learner's generator class (a ``ViTGenerator`` subclass with its own ``forward(z)``)."""
    for seed, (kw, B) in enumerate(GEN_CASES):
        ref, learner = _generator_pair(gen_cls, kw, seed)
        S, P, C = kw["image_size"], kw["patch_size"], kw["channels"]
        z = torch.randn(B, kw["latent_dim"], generator=seeded(50 + seed))  # (B, latent_dim)
        where = (
            f"your generator ({S}x{S} images, patch {P}, {C} channels, depth {kw['depth']}) "
            f"on z of shape {tuple(z.shape)}"
        )
        trace = _ForwardTrace(learner, ref, z)
        try:
            out = _run_generator(learner, z.clone(), kw, where)  # gradients on: a cut graph is named
        finally:
            trace.remove()
        expect(
            bool(trace.blocks_run),
            "your forward never runs self.blocks: call each block as block(h, w) (not block.forward)",
        )
        if trace.patches is None:
            fail("your forward never runs the patch decoder: patches = self.decoder(y)")
        expect(
            not isinstance(out, tuple),
            "your forward returns a tuple: return the images (B, C, H, W) only",
        )
        out = expect_tensor(out, (B, C, S, S), where).detach()
        with torch.no_grad():
            expected = ref(z)  # (B, C, H, W)
        if not _close(out, expected):
            fail(f"{where}: {_diagnose_image(learner, z, tuple(trace.patches.shape), P, S, C)}")

    # Backward reaches every parameter: the mapping network, E_pos, every block, the final SLN, the decoder.
    _, learner = _generator_pair(gen_cls, GEN_CASES[0][0], 8)
    learner.train()
    z = torch.randn(3, GEN_CASES[0][0]["latent_dim"], generator=seeded(70))  # (B, latent_dim)
    out = learner(z)
    (out * torch.randn(out.shape, generator=seeded(71))).sum().backward()
    dead = [n for n, p in learner.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    expect(
        not dead,
        f"no gradient reaches {_dead_summary(dead)}: every submodule must be used in forward, on tensors "
        "that are not detached and not computed under torch.no_grad() (w = self.mapping(z), not "
        "self.mapping(z).detach())",
    )


__all__ = ["check_generator_block", "check_generator_forward"]
