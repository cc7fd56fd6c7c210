"""Checkers for lesson 08 (ViT generator): Exercise 8.1 ``GeneratorBlock`` and 8.2 the generator's forward.

Exercise 8.1: the learner passes a CLASS with the package's constructor signature
``GeneratorBlock(dim, num_heads, mlp_ratio, style_dim)`` whose submodules are named as the package's
(``norm1``, ``attn``, ``norm2``, ``mlp``). The checker builds it with small sizes, randomises its weights,
copies them into the reference (``vitgan_lite.generator.GeneratorBlock``), compares the two on several
seeds and shapes, and names the mistakes public ViTGAN ports make: one SLN shared by both norms, the MLP
branch's result discarded, the residual adding the normalised input, a plain LayerNorm that ignores w.

Exercise 8.2: the learner passes a CLASS, a ``ViTGenerator`` subclass whose ``forward(z)`` they wrote from
the reference's submodules (``mapping``, ``pos_embed``, ``blocks``, ``norm``, ``decoder``). The checker
copies the reference's weights in and, with hooks on the blocks, the final SLN and the decoder, compares
every step with the reference while it runs (Sec. 4.2: w = MLP(z), h_0 = E_pos, h_l = Block_l(h_{l-1}, w),
y = SLN(h_L, w), x^i = f_theta(E_fou, y^i), image = tanh(unpatchify(x))), so that a mistake is named where
it happens: z instead of w in the SLNs, E_pos missing or not broadcast over the batch, w added to the
tokens, blocks not chained, the final SLN skipped, the decoder modulated by w instead of y, the patches
assembled in the wrong order, tanh missing or replaced by a clamp.

Shape legend: B batch, N tokens, D width, S style width (w), P patch size, G = H/P grid size, C channels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.checks._core import checker, expect, expect_close, expect_tensor, fail, seeded
from vitgan_lite.generator import GeneratorBlock as RefBlock
from vitgan_lite.generator import ViTGenerator
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
                expect(
                    not torch.allclose(block(h, w2), out, atol=1e-6),
                    f"{where}: the output does not change with w: {PLAIN_LN}",
                )
                fail(f"{where}: {_diagnose_block(out.detach(), ref, h, w)}")

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


class _ForwardTrace:
    """Hooks on the learner's generator that compare each step with the reference's while it runs.

    The reference's intermediate values (w, h_0, ..., h_L, y) are computed first; then every call of a
    block, of the final SLN and of the decoder is checked on entry, so that a mistake is named where it
    happens, before a wrong shape can crash deep inside a submodule.
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
        expect(_close(w, self.w), f"{where} {STYLE_WRONG}")

    def _check_h0(self, h: object) -> None:
        B, (N, D) = self.z.shape[0], self.pos.shape
        if not isinstance(h, torch.Tensor):
            fail(f"self.blocks[0] should get a tensor h_0 of shape {(B, N, D)}: {_H0}")
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
            return
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

    def _decoder_out(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        self.patches = out.detach()  # (B, N, C*P*P)


def _assemble(p: torch.Tensor, P: int, S: int, C: int, perm: tuple[int, ...], last: bool = False):
    """Assemble patches (B, N, C*P*P) with a given permute; ``last`` reads each patch as (P, P, C)."""
    B, G = p.shape[0], S // P
    x = p.reshape(B, G, G, P, P, C) if last else p.reshape(B, G, G, C, P, P)
    return x.permute(*perm).reshape(B, C, S, S)  # (B, C, H, W)


def _diagnose_image(out: torch.Tensor, p: torch.Tensor, P: int, S: int, C: int) -> str:
    """Name what is wrong between the (right) patches ``p`` and the (wrong) images ``out``.

    Tries every assembly (right or a known wrong one) with every squashing (tanh or a known wrong one), so
    that two mistakes at once are both named.
    """
    x = ref_unpatchify(p, P, S, C)  # (B, C, H, W) before the tanh
    assemblies = [
        (x, None),
        (_assemble(p, P, S, C, (0, 3, 2, 4, 1, 5)), TRANSPOSED_GRID),
        (x.transpose(-2, -1), TRANSPOSED_IMAGE),
        (p.reshape(p.shape[0], C, S, S), PLAIN_RESHAPE),
        (_assemble(p, P, S, C, (0, 5, 1, 3, 2, 4), last=True), CHANNELS_LAST),
    ]
    squashes: list[tuple[Callable[[torch.Tensor], torch.Tensor], str | None]] = [
        (torch.tanh, None),
        (lambda t: t, NO_TANH),
        (lambda t: t.clamp(-1, 1), CLAMP),
        (torch.sigmoid, RANGE_01),
        (lambda t: (torch.tanh(t) + 1) / 2, RANGE_01),
        (lambda t: torch.tanh(torch.tanh(t)), TANH_TWICE),
    ]
    for image, assembly in assemblies:
        for squash, squashing in squashes:
            mistakes = [m for m in (assembly, squashing) if m is not None]
            if mistakes and _close(out, squash(image)):
                return "; and ".join(mistakes)
    if _close(out.flatten().sort().values, torch.tanh(x).flatten().sort().values):
        return WRONG_PLACES
    return (
        "the decoder's patches are right but the images differ from the reference: form the image with "
        "unpatchify(patches, self.patch_size, self.image_size, self.channels) and return torch.tanh of it"
    )


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


@checker("8.2", "the generator's forward")
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
            with torch.no_grad():
                out = learner(z.clone())
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
        expect_tensor(out, (B, C, S, S), where)
        with torch.no_grad():
            expected = ref(z)  # (B, C, H, W)
        if not _close(out, expected):
            fail(f"{where}: {_diagnose_image(out, trace.patches, P, S, C)}")

    # Backward reaches every parameter: the mapping network, E_pos, every block, the final SLN, the decoder.
    _, learner = _generator_pair(gen_cls, GEN_CASES[0][0], 8)
    learner.train()
    z = torch.randn(3, GEN_CASES[0][0]["latent_dim"], generator=seeded(70))  # (B, latent_dim)
    out = learner(z)
    (out * torch.randn(out.shape, generator=seeded(71))).sum().backward()
    for name, p in learner.named_parameters():
        expect(
            p.grad is not None and bool(p.grad.abs().sum() > 0),
            f"no gradient reaches {name!r}: every submodule must be used in forward, on tensors that are "
            "not detached (w = self.mapping(z), not self.mapping(z).detach())",
        )


__all__ = ["check_generator_block", "check_generator_forward"]
