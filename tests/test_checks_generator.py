"""The lesson-08 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from helpers import alternatives_pass, assert_checker_contract, mistakes_are_named
from torch import nn

from vitgan_lite import generator
from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.checks import check_generator_block, check_generator_forward
from vitgan_lite.checks._core import EXERCISES, reference_source
from vitgan_lite.modulation import SLN
from vitgan_lite.patches import unpatchify

LESSON = "08_vit_generator"
Ref = generator.GeneratorBlock


def test_checkers_pass_the_reference_and_the_solution_and_meet_the_stubs(capsys):
    assert_checker_contract(
        LESSON,
        {
            "GeneratorBlock": (check_generator_block, Ref),
            "Generator": (check_generator_forward, generator.ViTGenerator),
        },
        capsys,
    )


def test_hints_and_reference_resolve():
    assert "def forward" in reference_source("8.1")
    assert "def synthesize" in reference_source("8.2")
    for number in ("8.1", "8.2"):
        assert len(EXERCISES[number].hints) == 2


def test_checkers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_generator_block(Ref)
    check_generator_forward(generator.ViTGenerator)
    assert torch.equal(torch.get_rng_state(), before)


# ---- wrong GeneratorBlocks (each overrides one piece of the reference) --------------------------------


class SharedInForward(Ref):
    """Public-port mistake: norm1 used for both branches (norm2 exists but is never called)."""

    def forward(self, h, w):
        h = h + self.attn(self.norm1(h, w))
        return h + self.mlp(self.norm1(h, w))


class SharedInstance(Ref):
    """Public-port mistake: one SLN instance assigned to both names."""

    def __init__(self, *args):
        super().__init__(*args)
        self.norm2 = self.norm1


class MLPDiscarded(Ref):
    """Public-port mistake: the MLP branch is computed, but the block returns h'."""

    def forward(self, h, w):
        h1 = h + self.attn(self.norm1(h, w))
        h = h1 + self.mlp(self.norm2(h1, w))  # noqa: F841  (the result is thrown away)
        return h1


class AttentionDiscarded(Ref):
    def forward(self, h, w):
        h1 = h + self.attn(self.norm1(h, w))
        return h + self.mlp(self.norm2(h1, w))


class NormalisedResidual(Ref):
    """The official ViTGAN code: x = SLN(h, w); h' = x + MSA(x) (not the paper's eq. 5)."""

    def forward(self, h, w):
        x = self.norm1(h, w)
        h = x + self.attn(x)
        x = self.norm2(h, w)
        return x + self.mlp(x)


class PlainLayerNormInForward(Ref):
    """Norms that ignore w: F.layer_norm instead of the block's SLNs."""

    def forward(self, h, w):
        h = h + self.attn(F.layer_norm(h, h.shape[-1:]))
        return h + self.mlp(F.layer_norm(h, h.shape[-1:]))


class PlainLayerNormModules(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, h, w):
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class PostNorm(Ref):
    def forward(self, h, w):
        h = self.norm1(h + self.attn(h), w)
        return self.norm2(h + self.mlp(h), w)


class DetachedW(Ref):
    def forward(self, h, w):
        return super().forward(h, w.detach())


class OtherNames(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.ln_1 = self.norm1
        del self.norm1


class SLNGivenH(Ref):
    def forward(self, h, w):
        h = h + self.attn(self.norm1(h, h))
        return h + self.mlp(self.norm2(h, h))


class SLNArgsSwapped(Ref):
    def forward(self, h, w):
        h = h + self.attn(self.norm1(w, h))
        return h + self.mlp(self.norm2(w, h))


class SLNWithoutW(Ref):
    def forward(self, h, w):
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class SLNArgsSwappedInInit(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.norm1, self.norm2 = SLN(style_dim, dim), SLN(style_dim, dim)


class NoAttnResidual(Ref):
    def forward(self, h, w):
        h = self.attn(self.norm1(h, w))
        return h + self.mlp(self.norm2(h, w))


class NoMlpResidual(Ref):
    def forward(self, h, w):
        h = h + self.attn(self.norm1(h, w))
        return self.mlp(self.norm2(h, w))


class NoNormBeforeAttention(Ref):
    def forward(self, h, w):
        h = h + self.attn(h)
        return h + self.mlp(self.norm2(h, w))


class ParallelBranches(Ref):
    def forward(self, h, w):
        return h + self.attn(self.norm1(h, w)) + self.mlp(self.norm2(h, w))


class NormsSwapped(Ref):
    def forward(self, h, w):
        h = h + self.attn(self.norm2(h, w))
        return h + self.mlp(self.norm1(h, w))


class MlpFirst(Ref):
    def forward(self, h, w):
        h = h + self.mlp(self.norm2(h, w))
        return h + self.attn(self.norm1(h, w))


class InPlace(Ref):
    def forward(self, h, w):
        h += self.attn(self.norm1(h, w))
        h += self.mlp(self.norm2(h, w))
        return h


class DetachedAttention(Ref):
    def forward(self, h, w):
        h = h + self.attn(self.norm1(h, w)).detach()
        return h + self.mlp(self.norm2(h, w))


class CastsToFloat32(Ref):
    def forward(self, h, w):
        return super().forward(h.float(), w.float())


class L2Attention(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.attn = L2MultiHeadAttention(dim, num_heads)


class TorchAttention(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, h, w):
        x = self.norm1(h, w)
        h = h + self.attn(x, x, x, need_weights=False)[0]
        return h + self.mlp(self.norm2(h, w))


def _with_mlp(hidden_of, act=nn.GELU, drop=0.0):
    class WithMlp(Ref):
        def __init__(self, dim, num_heads, mlp_ratio, style_dim):
            super().__init__(dim, num_heads, mlp_ratio, style_dim)
            hidden = hidden_of(dim, mlp_ratio)
            layers = OrderedDict(fc1=nn.Linear(dim, hidden), act=act())
            if drop:
                layers["drop"] = nn.Dropout(drop)
            layers["fc2"] = nn.Linear(hidden, dim)
            self.mlp = nn.Sequential(layers)

    return WithMlp


test_block_mistakes_are_named = mistakes_are_named(
    check_generator_block,
    [
        (SharedInForward, r"one SLN instance is used for both norms.*self\.norm2"),
        (SharedInstance, r"same SLN instance.*two instances"),
        (MLPDiscarded, r"MLP branch's result is discarded"),
        (AttentionDiscarded, r"attention branch is lost"),
        (NormalisedResidual, r"adds the normalised input.*UN-normalised.*official ViTGAN code"),
        (PlainLayerNormInForward, r"ignore w.*plain LayerNorm"),
        (PlainLayerNormModules, r"plain LayerNorm.*ignores w"),
        (PostNorm, r"post-norm"),
        (DetachedW, r"no gradient reaches w"),
        (OtherNames, r"name the submodules as the package does"),
        (SLNGivenH, r"self\.norm1 gets h as its style.*self\.norm1\(h, w\)"),
        (SLNArgsSwapped, r"self\.norm1 is called as norm\(w, h\).*swapped.*self\.norm1\(h, w\)"),
        (SLNWithoutW, r"self\.norm1 is called without w.*self\.norm1\(h, w\)"),
        (SLNArgsSwappedInInit, r"SLN\(dim, style_dim\).*order"),
        (NoAttnResidual, r"residual .*around the attention is missing"),
        (NoMlpResidual, r"residual .*around the MLP is missing"),
        (NoNormBeforeAttention, r"attention reads h itself.*self\.norm1\(h, w\)"),
        (ParallelBranches, r"MLP branch reads the block's input h.*instead of h'"),
        (NormsSwapped, r"norm1 and norm2 are swapped"),
        (MlpFirst, r"MLP runs before the attention"),
        (InPlace, r"in place.*h = h \+"),
        (DetachedAttention, r"no gradient reaches .*attn\..*detach"),
        (CastsToFloat32, r"float64.*float32"),
        (L2Attention, r"dot-product MultiHeadAttention.*L2 attention is for the discriminator"),
        (TorchAttention, r"MultiHeadAttention\(dim, num_heads\) from vitgan_lite\.attention"),
        (_with_mlp(lambda d, r: d * r), r"hidden width .*float.*int\(dim \* mlp_ratio\)"),
        (_with_mlp(lambda d, r: math.ceil(d * r)), r"hidden width .*int\(dim \* mlp_ratio\)"),
        (_with_mlp(lambda d, r: int(d * r), act=nn.ReLU), r"MLP's activation.*ReLU.*GELU"),
        (_with_mlp(lambda d, r: int(d * r), drop=0.1), r"different outputs for the same input.*Dropout"),
    ],
)


# ---- correct GeneratorBlocks written another way ------------------------------------------------------


class IndexNamedMLP(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class OwnSLN(nn.Module):
    """A learner's own SLN (lesson 06's exercise), eps 1e-6, written with F.layer_norm."""

    def __init__(self, dim, style_dim):
        super().__init__()
        self.gamma, self.beta = nn.Linear(style_dim, dim), nn.Linear(style_dim, dim)

    def forward(self, h, w):
        return self.gamma(w)[:, None] * F.layer_norm(h, h.shape[-1:], eps=1e-6) + self.beta(w)[:, None]


class WrittenOut(nn.Module):
    """From scratch, with the learner's SLN, named intermediates and an identity drop-path."""

    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1, self.norm2 = OwnSLN(dim, style_dim), OwnSLN(dim, style_dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.mlp = nn.Sequential(
            OrderedDict(fc1=nn.Linear(dim, hidden), act=nn.GELU(), fc2=nn.Linear(hidden, dim))
        )
        self.drop_path = nn.Identity()

    def forward(self, h, w):
        attended = self.attn(self.norm1(h, w))
        h_mid = h + self.drop_path(attended)
        return h_mid + self.drop_path(self.mlp(self.norm2(h_mid, w)))


class StrongSLN(Ref):
    """SLN(gain=1.0), as the generator builds them: the init does not matter, the weights are copied."""

    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.norm1, self.norm2 = SLN(dim, style_dim, gain=1.0), SLN(dim, style_dim, eps=1e-6, gain=1.0)


class IndexNamedMLPWithDropout(Ref):
    """An unnamed nn.Sequential with a Dropout(0.0): its Linears are mlp.0 and mlp.3."""

    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim))


test_block_alternatives_pass = alternatives_pass(
    check_generator_block,
    [IndexNamedMLP, WrittenOut, StrongSLN, _with_mlp(lambda d, r: int(d * r)), IndexNamedMLPWithDropout],
)


def test_block_value_by_hand():
    """The reference the checker trusts, against eq. 5 written out with the SLN formula (lesson 06)."""
    torch.manual_seed(1)
    block = Ref(4, 2, 2.0, 3)
    h, w = torch.randn(2, 3, 4), torch.randn(2, 3)

    def sln(norm, x):  # gamma(w) * (x - mean) / sqrt(var + eps) + beta(w), per token
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return norm.gamma(w)[:, None] * (x - mu) / torch.sqrt(var + 1e-5) + norm.beta(w)[:, None]

    h1 = h + block.attn(sln(block.norm1, h))
    by_hand = h1 + block.mlp(sln(block.norm2, h1))
    torch.testing.assert_close(block(h, w), by_hand, atol=1e-5, rtol=1e-4)


# ---- Exercise 8.2: wrong generator forwards --------------------------------------------------------


class Steps(generator.ViTGenerator):
    """The reference forward, one method per step: each wrong generator below changes one step."""

    def forward(self, z):
        w = self.map(z)  # (B, S)
        h = self.first_tokens(z, w)  # (B, N, D)
        h = self.run_blocks(h, self.style(z, w))
        y = self.final(h, w)  # (B, N, D)
        patches = self.decode(y, w)  # (B, N, C*P*P)
        return self.squash(self.assemble(patches))  # (B, C, H, W)

    def map(self, z):
        return self.mapping(z)

    def style(self, z, w):
        return w

    def first_tokens(self, z, w):
        return self.pos_embed().unsqueeze(0).expand(z.shape[0], -1, -1)

    def run_blocks(self, h, w):
        for block in self.blocks:
            h = block(h, w)
        return h

    def final(self, h, w):
        return self.norm(h, w)

    def decode(self, y, w):
        return self.decoder(y)

    def assemble(self, patches):
        return unpatchify(patches, self.patch_size, self.image_size, self.channels)

    def squash(self, x):
        return torch.tanh(x)


class ZToSLNs(Steps):
    def style(self, z, w):
        return z


class BatchMeanStyle(Steps):
    def style(self, z, w):
        return w.mean(0, keepdim=True).expand_as(w)


class ZeroTokens(Steps):
    def first_tokens(self, z, w):
        return torch.zeros(z.shape[0], self.num_patches, self.dim)


class StyleTokens(Steps):
    """A TransGAN-like start, w copied to every token, and no E_pos (runs where S = D)."""

    def first_tokens(self, z, w):
        return w.unsqueeze(1).expand(-1, self.num_patches, -1)


class StyleAddedToTokens(Steps):
    def first_tokens(self, z, w):
        return self.pos_embed() + w.unsqueeze(1)


class PosNotBroadcast(Steps):
    def first_tokens(self, z, w):
        return self.pos_embed().unsqueeze(0)


class PosUnbatched(Steps):
    def first_tokens(self, z, w):
        return self.pos_embed()


class BlocksNotChained(Steps):
    def run_blocks(self, h, w):
        for block in self.blocks:
            out = block(h, w)
        return out


class LastBlockOnly(Steps):
    def run_blocks(self, h, w):
        return self.blocks[-1](h, w)


class BlockTwice(Steps):
    def run_blocks(self, h, w):
        return super().run_blocks(self.blocks[0](h, w), w)


class FirstBlockOnly(Steps):
    def run_blocks(self, h, w):
        return self.blocks[0](h, w)


class FinalSLNSkipped(Steps):
    def final(self, h, w):
        return h


class FinalSLNDiscarded(Steps):
    def final(self, h, w):
        self.norm(h, w)
        return h


class DecoderGetsW(Steps):
    def decode(self, y, w):
        return self.decoder(w.unsqueeze(1).expand(-1, self.num_patches, -1))


class DecoderGetsFlatW(Steps):
    def decode(self, y, w):
        return self.decoder(w)


def _assemble(permutation, channels_last=False):
    class Assemble(Steps):
        def assemble(self, p):
            B, C, S, P = p.shape[0], self.channels, self.image_size, self.patch_size
            G = S // P
            x = p.reshape(B, G, G, P, P, C) if channels_last else p.reshape(B, G, G, C, P, P)
            return x.permute(*permutation).reshape(B, C, S, S)

    return Assemble


class PlainReshape(Steps):
    def assemble(self, p):
        return p.reshape(p.shape[0], self.channels, self.image_size, self.image_size)


class ImageTransposed(Steps):
    def assemble(self, p):
        return super().assemble(p).transpose(-2, -1)


class ImageFlipped(Steps):
    def assemble(self, p):
        return super().assemble(p).flip(-1)


class NoTanh(Steps):
    def squash(self, x):
        return x


class Clamp(Steps):
    def squash(self, x):
        return x.clamp(-1, 1)


class Sigmoid(Steps):
    def squash(self, x):
        return torch.sigmoid(x)


class TanhTwice(Steps):
    def squash(self, x):
        return torch.tanh(torch.tanh(x))


class TransposedGridNoTanh(_assemble((0, 3, 2, 4, 1, 5))):
    def squash(self, x):
        return x


class BlockForward(Steps):
    """Calls block.forward, which the checker's hooks cannot see."""

    def run_blocks(self, h, w):
        for block in self.blocks:
            h = block.forward(h, w)
        return h


class DetachedW(Steps):
    def map(self, z):
        return self.mapping(z).detach()


class ReturnsW(generator.ViTGenerator):
    def forward(self, z):
        w = self.mapping(z)
        return self.synthesize(w), w


class ExtraModule(Steps):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.out = nn.Conv2d(self.channels, self.channels, 1)


class NormGetsZ(Steps):
    def forward(self, z):
        w = self.mapping(z)
        h = self.run_blocks(self.first_tokens(z, w), w)
        return self.squash(self.assemble(self.decoder(self.norm(h, z))))


class NormGetsDetachedW(Steps):
    def final(self, h, w):
        return self.norm(h, w.detach())


class SqueezedW(Steps):
    """.squeeze() on w: harmless until a batch of 1, where w loses its batch axis."""

    def map(self, z):
        return self.mapping(z).squeeze()


class MappedTwice(Steps):
    def map(self, z):
        return self.mapping(self.mapping(z))


class PosEmbedNotCalled(Steps):
    def first_tokens(self, z, w):
        return self.pos_embed.expand(z.shape[0], -1, -1)


class PosAddedTwice(Steps):
    def run_blocks(self, h, w):
        pos = self.pos_embed()
        for block in self.blocks:
            h = block(h + pos, w)
        return h


class PosAfterEachBlock(Steps):
    def run_blocks(self, h, w):
        for block in self.blocks:
            h = block(h, w) + self.pos_embed()
        return h


class PosUnderNoGrad(Steps):
    def first_tokens(self, z, w):
        with torch.no_grad():
            return self.pos_embed().unsqueeze(0).expand(z.shape[0], -1, -1)


class DetachedTokens(Steps):
    def decode(self, y, w):
        return self.decoder(y.detach())


class ReluInLayout(Steps):
    """An activation inside the layout code: the layout is right, the values are not."""

    def assemble(self, p):
        B, C, S, P = p.shape[0], self.channels, self.image_size, self.patch_size
        G = S // P
        x = F.relu(p).reshape(B, G, G, C, P, P).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(B, C, S, S)


class GeluOnPatches(Steps):
    def decode(self, y, w):
        return F.gelu(self.decoder(y))


class HalfScaleTanh(Steps):
    def squash(self, x):
        return 2 * torch.sigmoid(x) - 1


class ChannelsHardCoded(Steps):
    def assemble(self, p):
        return unpatchify(p, self.patch_size, self.image_size, 3)


class UnpatchifyArgsSwapped(Steps):
    def assemble(self, p):
        return unpatchify(p, self.image_size, self.patch_size, self.channels)


class ManualLayoutNoPermute(Steps):
    """reshape to (B, C, G, P, G, P) without the permute: the patches are cut into strips."""

    def assemble(self, p):
        B, C, S, P = p.shape[0], self.channels, self.image_size, self.patch_size
        return p.reshape(B, C, S // P, P, S // P, P).reshape(B, C, S, S)


test_forward_mistakes_are_named = mistakes_are_named(
    check_generator_forward,
    [
        (ZToSLNs, r"self\.blocks\[0\] gets z instead of w.*w = self\.mapping\(z\)"),
        (BatchMeanStyle, r"self\.blocks\[0\] gets a style that is not w = self\.mapping\(z\)"),
        (ZeroTokens, r"h_0 is not the position embedding: E_pos is not used.*pos_embed\(\)"),
        (StyleTokens, r"E_pos is not used.*not zeros, noise or w"),
        (StyleAddedToTokens, r"E_pos plus something that changes from image to image.*h_0 = E_pos alone"),
        (PosNotBroadcast, r"batch size 1 for a batch of 3 images: E_pos is not broadcast.*expand\(B, -1"),
        (PosUnbatched, r"\(N, D\), without a batch dimension.*expand\(B, -1, -1\)"),
        (BlocksNotChained, r"self\.blocks\[1\] gets h_0 instead of the previous block's output.*h = block"),
        (LastBlockOnly, r"self\.blocks\[1\] runs before self\.blocks\[0\].*once, in order"),
        (BlockTwice, r"self\.blocks\[0\] runs a second time.*once, in order"),
        (FirstBlockOnly, r"only 1 of the 2 blocks ran before the final SLN"),
        (FinalSLNSkipped, r"decoder gets h_L.*final SLN is skipped.*y = self\.norm\(h, w\)"),
        (FinalSLNDiscarded, r"final SLN is skipped"),
        (DecoderGetsW, r"decoder is modulated by w instead of the token outputs y.*self\.decoder\(y\)"),
        (DecoderGetsFlatW, r"decoder is modulated by w instead of the token outputs y"),
        (_assemble((0, 3, 2, 4, 1, 5)), r"assembled in the wrong order: the token grid is transposed"),
        (_assemble((0, 5, 1, 3, 2, 4), channels_last=True), r"channels-last.*\(C, P, P\).*unpatchify"),
        (PlainReshape, r"plain reshape.*strips.*unpatchify"),
        (ImageTransposed, r"image is transposed.*unpatchify"),
        (ImageFlipped, r"right pixel values, but in the wrong places.*unpatchify"),
        (NoTanh, r"not squashed into \[-1, 1\].*torch\.tanh"),
        (Clamp, r"clamped.*zero gradient.*torch\.tanh"),
        (Sigmoid, r"\[0, 1\] \(a sigmoid.*real images are in \[-1, 1\].*torch\.tanh"),
        (TanhTwice, r"tanh is applied twice"),
        (TransposedGridNoTanh, r"token grid is transposed.*; and the pixels are not squashed"),
        (BlockForward, r"no block of self\.blocks ran before the final SLN.*block\.forward"),
        (DetachedW, r"self\.blocks\[0\] gets w with no gradient.*detach"),
        (ReturnsW, r"returns a tuple"),
        (ExtraModule, r"does not have the reference's sub-modules.*subclass"),
        (NormGetsZ, r"final SLN self\.norm gets z instead of w"),
        (NormGetsDetachedW, r"final SLN self\.norm gets w with no gradient.*detach"),
        (SqueezedW, r"batch of 1.*\.squeeze\(\).*batch axis"),
        (MappedTwice, r"gets a style that is not w = self\.mapping\(z\)"),
        (PosEmbedNotCalled, r"self\.pos_embed is a module.*self\.pos_embed\(\)"),
        (PosAddedTwice, r"E_pos is added twice"),
        (PosAfterEachBlock, r"E_pos is added again before self\.blocks\[1\]"),
        (PosUnderNoGrad, r"h_0 has no gradient.*pos_embed.*no_grad"),
        (DetachedTokens, r"decoder gets y with no gradient.*detach"),
        (ReluInLayout, r"ReLU.*before the tanh.*negative"),
        (GeluOnPatches, r"GELU.*before the tanh"),
        (HalfScaleTanh, r"tanh\(x / 2\).*2 \* sigmoid\(x\) - 1.*torch\.tanh\(x\)"),
        (ChannelsHardCoded, r"channels.*hard-coded.*self\.channels"),
        (
            UnpatchifyArgsSwapped,
            r"unpatchify's arguments are in the wrong order.*unpatchify\(patches, self\.patch_size",
        ),
        (ManualLayoutNoPermute, r"strips|wrong places"),
    ],
)


# ---- correct generator forwards written another way ---------------------------------------------------


class TanhOnPatches(Steps):
    """tanh before the layout: an elementwise function commutes with moving pixels around."""

    def decode(self, y, w):
        return torch.tanh(self.decoder(y))

    def squash(self, x):
        return x


class ManualLayout(Steps):
    def first_tokens(self, z, w):
        return self.pos_embed().repeat(len(z), 1, 1)

    def assemble(self, p):
        B, C, S, P = p.shape[0], self.channels, self.image_size, self.patch_size
        G = S // P
        x = p.view(B, G, G, C, P, P).permute(0, 3, 1, 4, 2, 5)  # (B, C, G, P, G, P)
        return x.reshape(B, C, S, S)

    def squash(self, x):
        return x.tanh()


class ViaSynthesize(generator.ViTGenerator):
    """self.synthesize does it all (the exercise asks not to use it, but it is correct)."""

    def forward(self, z):
        return self.synthesize(self.mapping(z))


class Einsum(generator.ViTGenerator):
    def forward(self, z):
        w = self.mapping(z)
        h = self.pos_embed()[None].expand(z.size(0), *self.pos_embed().shape)
        for block in self.blocks:
            h = block(h, w=w)
        patches = self.decoder(self.norm(h, w=w))
        G, P, C = self.grid_size, self.patch_size, self.channels
        x = torch.einsum("bijcpq->bcipjq", patches.reshape(-1, G, G, C, P, P))
        return F.tanh(x.reshape(-1, C, G * P, G * P))


test_forward_alternatives_pass = alternatives_pass(
    check_generator_forward, [Steps, TanhOnPatches, ManualLayout, ViaSynthesize, Einsum]
)
