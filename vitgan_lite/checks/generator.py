"""Checkers for lesson 08 (ViT generator): Exercise 8.1 ``GeneratorBlock`` and 8.2 ``assemble_patches``.

Exercise 8.1: the learner passes a CLASS with the package's constructor signature
``GeneratorBlock(dim, num_heads, mlp_ratio, style_dim)`` whose submodules are named as the package's
(``norm1``, ``attn``, ``norm2``, ``mlp``). The checker builds it with small sizes, randomises its weights,
copies them into the reference (``vitgan_lite.generator.GeneratorBlock``), compares the two on several
seeds and shapes, and names the mistakes public ViTGAN ports make: one SLN shared by both norms, the MLP
branch's result discarded, the residual adding the normalised input, a plain LayerNorm that ignores w.

Exercise 8.2: ``assemble_patches(patches, patch_size, image_size, channels)`` must be the exact inverse of
``patchify``; the checker fills every token with its own index to show where each token lands, then
names a transposed grid, channels-last patches, transposed pixels or a plain reshape.

Shape legend: B batch, N tokens, D width, S style width (w), P patch size, G = H/P grid size, C channels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.checks._core import checker, expect, expect_close, expect_tensor, seeded
from vitgan_lite.generator import GeneratorBlock as RefBlock
from vitgan_lite.patches import patchify as ref_patchify
from vitgan_lite.patches import unpatchify as ref_unpatchify

# ----------------------------------------------------------------------------------------------------
# Exercise 8.1: GeneratorBlock
# ----------------------------------------------------------------------------------------------------

# (B, N, D, num_heads, mlp_ratio, S): odd batches and token counts, one head, S != D, a single image.
BLOCK_CASES = [(3, 5, 8, 2, 2.0, 6), (1, 4, 12, 3, 4.0, 12), (5, 7, 6, 1, 1.5, 4), (2, 9, 10, 5, 3.0, 7)]

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


def _build(cls: type[nn.Module], seed: int, *args, **kwargs) -> nn.Module:
    """Construct the learner's module under a fixed seed, leaving the caller's global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(*args, **kwargs)


def _check_norms(block: nn.Module) -> None:
    """Two distinct SLNs named norm1 and norm2, each a module of (h, w) with gamma and beta layers."""
    norm1, norm2 = getattr(block, "norm1", None), getattr(block, "norm2", None)
    expect(isinstance(norm1, nn.Module) and isinstance(norm2, nn.Module), NAMES_HINT)
    if norm1 is norm2:
        raise AssertionError(
            "self.norm2 is the same SLN instance as self.norm1, so both norms of the block share one "
            "gamma(w), beta(w). Create two instances: self.norm1 = SLN(dim, style_dim) and self.norm2 = "
            "SLN(dim, style_dim)"
        )
    for name, norm in (("norm1", norm1), ("norm2", norm2)):
        if isinstance(norm, nn.LayerNorm) or not hasattr(norm, "gamma"):
            raise AssertionError(
                f"self.{name} is a plain LayerNorm ({type(norm).__name__}), which ignores w. Use a "
                "self-modulated LayerNorm, SLN(dim, style_dim) from vitgan_lite.modulation (lesson 06), "
                f"and call it as self.{name}(h, w)"
            )
    shared = {id(p) for p in norm1.parameters()} & {id(p) for p in norm2.parameters()}
    expect(
        not shared,
        "self.norm1 and self.norm2 share parameters (the same gamma / beta layers): give each SLN its own, "
        "SLN(dim, style_dim) twice",
    )


def _reference_from(block: nn.Module, D: int, heads: int, ratio: float, S: int) -> nn.Module:
    """The package's block holding the learner's weights (``mlp.0/2`` are accepted for ``mlp.fc1/fc2``)."""
    state = {
        k.replace("mlp.0.", "mlp.fc1.").replace("mlp.2.", "mlp.fc2."): v
        for k, v in block.state_dict().items()
    }
    ref = _build(RefBlock, 0, D, heads, ratio, S)
    try:
        ref.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).split("\n\t")[1:3]
        raise AssertionError(
            f"your block's parameters do not match the package's GeneratorBlock({D}, {heads}, {ratio}, {S}): "
            f"{NAMES_HINT} ({'; '.join(s.strip() for s in first)})"
        ) from None
    return ref.eval()


def _diagnose_block(out: torch.Tensor, ref: nn.Module, h: torch.Tensor, w: torch.Tensor) -> str:
    """Name the mistake that turns (h, w) into ``out`` with the reference's submodules, if we know it."""
    attn, mlp = ref.attn, ref.mlp
    n1 = lambda x: ref.norm1(x, w)  # noqa: E731
    n2 = lambda x: ref.norm2(x, w)  # noqa: E731
    ln = lambda x: F.layer_norm(x, (x.shape[-1],))  # noqa: E731  a LayerNorm that never sees w

    def shared(n: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        h1 = h + attn(n(h))  # (B, N, D)
        return h1 + mlp(n(h1))

    def normalised_residual() -> torch.Tensor:
        x = n1(h)  # (B, N, D)
        h1 = x + attn(x)
        x = n2(h1)
        return x + mlp(x)

    def post_norm() -> torch.Tensor:
        h1 = n1(h + attn(h))  # (B, N, D)
        return n2(h1 + mlp(h1))

    h1 = h + attn(n1(h))  # (B, N, D): the correct h'
    candidates: list[tuple[Callable[[], torch.Tensor], str]] = [
        (lambda: shared(n1), SHARED),
        (lambda: shared(n2), SHARED),
        (lambda: h1, MLP_DISCARDED),
        (lambda: h + mlp(n2(h1)), ATTN_DISCARDED),
        (lambda: h + mlp(n2(h)), ATTN_DISCARDED),
        (normalised_residual, NORMALISED_RESIDUAL),
        (lambda: shared(ln), PLAIN_LN),
        (post_norm, POST_NORM),
    ]
    with torch.no_grad():
        for candidate, message in candidates:
            if torch.allclose(out, candidate(), atol=1e-5, rtol=1e-4):
                return message
    return (
        "compute, in this order, h' = h + self.attn(self.norm1(h, w)) and h' + self.mlp(self.norm2(h', w)) "
        "(paper eq. 5: pre-norm, residuals adding the un-normalised input, one SLN per branch)"
    )


@checker("8.1", "GeneratorBlock")
def check_generator_block(GeneratorBlock: type[nn.Module]) -> None:
    """Check a learner's ``GeneratorBlock(dim, num_heads, mlp_ratio, style_dim)`` class."""
    for seed, (B, N, D, heads, ratio, S) in enumerate(BLOCK_CASES):
        block = _build(GeneratorBlock, seed, D, heads, ratio, S)
        _check_norms(block)
        with torch.no_grad():  # move every weight away from its init, so that every part matters
            for i, p in enumerate(block.parameters()):
                p.add_(0.2 * torch.randn(p.shape, generator=seeded(100 + i)))
        ref = _reference_from(block, D, heads, ratio, S)
        h = torch.randn(B, N, D, generator=seeded(seed))  # (B, N, D)
        w = torch.randn(B, S, generator=seeded(10 + seed))  # (B, S)
        where = f"GeneratorBlock({D}, {heads}, {ratio}, {S}) on h {(B, N, D)}, w {(B, S)}"
        out = expect_tensor(block(h.clone(), w.clone()), (B, N, D), where)
        with torch.no_grad():
            expected = ref(h, w)  # (B, N, D)
            if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
                w2 = torch.randn(B, S, generator=seeded(20 + seed))  # (B, S)
                if torch.allclose(block(h, w2), out, atol=1e-6):
                    raise AssertionError(f"{where}: the output does not change with w: {PLAIN_LN}")
                raise AssertionError(f"{where}: {_diagnose_block(out.detach(), ref, h, w)}")

        # Backward: every parameter, and w (z reaches the image only through the SLNs' gamma(w), beta(w)).
        block.zero_grad(set_to_none=True)
        wg = w.clone().requires_grad_(True)
        (block(h, wg) * torch.randn(B, N, D, generator=seeded(30 + seed))).sum().backward()
        for name, p in block.named_parameters():
            expect(
                p.grad is not None and bool(p.grad.abs().sum() > 0),
                f"{where}: no gradient reaches {name!r}: every submodule must be used in forward, on "
                "tensors that are not detached",
            )
        expect(
            wg.grad is not None and bool(wg.grad.abs().sum() > 0),
            f"{where}: no gradient reaches w: pass w itself (not w.detach()) to both SLNs",
        )

    # Defining property: pre-norm residual blocks. With both branches' output layers at zero the block is
    # the identity, h -> h exactly (a block that adds SLN(h, w) instead of h would return the normalised h).
    block = _build(GeneratorBlock, 7, 8, 2, 2.0, 6)
    silent = copy.deepcopy(block)
    with torch.no_grad():
        for layer in (silent.attn.proj, silent.mlp[-1]):
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
# Exercise 8.2: assemble_patches
# ----------------------------------------------------------------------------------------------------

# (B, C, image_size, P): odd batches, one and two channels, P = 1, one patch per image.
ASSEMBLE_CASES = [(2, 3, 8, 4), (3, 1, 12, 4), (5, 2, 6, 2), (1, 3, 32, 4), (4, 3, 8, 8), (3, 3, 6, 1)]


def _assemble_with(p: torch.Tensor, P: int, S: int, C: int, perm: tuple[int, ...], last: bool = False):
    """Assemble with a given permute; ``last`` reads each patch vector as (P, P, C) instead of (C, P, P)."""
    B, G = p.shape[0], S // P
    if last:
        x = p.reshape(B, G, G, P, P, C).permute(0, 5, 1, 3, 2, 4)  # (B, C, G, P, G, P)
    else:
        x = p.reshape(B, G, G, C, P, P).permute(*perm)  # (B, C, G, P, G, P) in the right order
    return x.reshape(B, C, S, S)  # (B, C, H, W)


def _token_map(S: int, P: int) -> torch.Tensor:
    """Pixel (r, c) of the correct image of index-filled tokens holds (r // P) * (S / P) + c // P."""
    r = torch.arange(S).unsqueeze(1)  # (S, 1)
    c = torch.arange(S).unsqueeze(0)  # (1, S)
    return ((r // P) * (S // P) + c // P).float()  # (S, S)


def _diagnose_assemble(out: torch.Tensor, p: torch.Tensor, P: int, S: int, C: int) -> str:
    candidates = [
        (
            _assemble_with(p, P, S, C, (0, 3, 2, 4, 1, 5)),
            "the token grid is transposed: token 1 lands BELOW token 0 instead of to its right. Tokens "
            "are row-major: token n goes to grid row n // (W/P), column n % (W/P); from (B, H/P, W/P, C, P, "
            "P) permute with (0, 3, 1, 4, 2, 5)",
        ),
        (
            _assemble_with(p, P, S, C, (), last=True),
            "each patch vector is read channels-last, as (P, P, C). The course's patches are flattened "
            "channels-first, (C, P, P) (the PatchDecoder's output and patchify's layout): reshape to (B, "
            "H/P, W/P, C, P, P)",
        ),
        (
            _assemble_with(p, P, S, C, (0, 3, 1, 5, 2, 4)),
            "inside each patch the pixels are transposed (columns before rows): keep the patch's own "
            "axes in the order (C, P_rows, P_cols), permute with (0, 3, 1, 4, 2, 5)",
        ),
        (
            _assemble_with(p, P, S, C, (0, 3, 2, 5, 1, 4)),
            "the whole image is transposed (rows and columns swapped, in the grid and inside each patch): "
            "from (B, H/P, W/P, C, P, P) permute with (0, 3, 1, 4, 2, 5)",
        ),
        (
            p.reshape(p.shape[0], C, S, S),
            "a plain reshape to (B, C, H, W) cuts the tokens into strips of the image, not P x P squares: "
            "reshape to (B, H/P, W/P, C, P, P), permute to (B, C, H/P, P, W/P, P), then reshape",
        ),
    ]
    for candidate, message in candidates:
        if torch.equal(out, candidate):
            return message
    return (
        "pixel (r, c) of channel ch must be entry ch*P*P + (r % P)*P + c % P of token "
        "(r // P)*(W/P) + c // P: "
        "reshape to (B, H/P, W/P, C, P, P), permute with (0, 3, 1, 4, 2, 5), reshape to (B, C, H, W)"
    )


@checker("8.2", "assemble_patches")
def check_assemble_patches(assemble_patches: Callable[..., torch.Tensor]) -> None:
    """Check a learner's ``assemble_patches(patches, patch_size, image_size, channels) -> (B, C, H, W)``."""
    # Where does each token land? Fill token n with the number n: the image must show blocks n.
    B, C, S, P = 2, 3, 16, 4
    N, G = (S // P) ** 2, S // P
    index = torch.arange(N, dtype=torch.float32).view(1, N, 1).expand(B, N, C * P * P)  # (B, N, C*P*P)
    out = expect_tensor(assemble_patches(index.clone(), P, S, C), (B, C, S, S), "assemble_patches")
    want = _token_map(S, P).expand(B, C, S, S)  # (B, C, H, W)
    if not torch.equal(out, want):
        got = out[0, 0, ::P, ::P].to(torch.int64)  # (G, G): the token index found in each block's corner
        message = _diagnose_assemble(out, index, P, S, C)
        raise AssertionError(
            f"with every token filled with its own index n ({N} tokens, patch {P}, {S}x{S} image), the "
            f"P x P block at grid row i, column j should hold i*{G} + j; the top-left corners of your blocks "
            f"hold {got.tolist()}: {message}"
        )

    for seed, (B, C, S, P) in enumerate(ASSEMBLE_CASES):
        N = (S // P) ** 2
        x = torch.randn(B, C, S, S, generator=seeded(seed))  # (B, C, H, W)
        p = ref_patchify(x, P)  # (B, N, C*P*P)
        where = f"assemble_patches of {(B, N, C * P * P)} patches (patch {P}, image {S}, {C} channels)"
        out = expect_tensor(assemble_patches(p.clone(), P, S, C), (B, C, S, S), where)
        if not torch.equal(out, x):
            raise AssertionError(f"{where}: {_diagnose_assemble(out, p, P, S, C)}")
    # The inverse in the other direction, on patches that did not come from an image.
    p = torch.randn(3, 16, 2 * 2 * 2, generator=seeded(20))  # (B, N, C*P*P)
    expect_close(
        ref_patchify(assemble_patches(p, 2, 8, 2), 2),
        p,
        "patchify(assemble_patches(p)) should give p back for any patches p",
        atol=0,
        rtol=0,
    )
    expect(
        torch.equal(assemble_patches(p, 2, 8, 2), ref_unpatchify(p, 2, 8, 2)),
        "assemble_patches should equal vitgan_lite.patches.unpatchify on square images",
    )


__all__ = ["check_assemble_patches", "check_generator_block"]
