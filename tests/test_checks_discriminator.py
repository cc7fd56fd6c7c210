"""The lesson-05 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from helpers import alternatives_pass, assert_checker_contract, assert_rejects, mistakes_are_named
from torch import nn

from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.checks import check_discriminator_block, check_discriminator_forward
from vitgan_lite.checks._core import EXERCISES, reference_source
from vitgan_lite.discriminator import DiscriminatorBlock, ViTDiscriminator

LESSON = "05_vit_discriminator"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "DiscriminatorBlock": (check_discriminator_block, DiscriminatorBlock),
            "Discriminator": (check_discriminator_forward, ViTDiscriminator),
        },
        capsys,
    )


def test_hints_and_reference_resolve():
    for number in ("5.1", "5.2"):
        assert len(EXERCISES[number].hints) == 2
        assert "def " in reference_source(number)


def test_checkers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_discriminator_block(DiscriminatorBlock)
    check_discriminator_forward(ViTDiscriminator)
    assert torch.equal(torch.get_rng_state(), before)


# ---- Exercise 5.1: wrong blocks, each the reference with one line changed ----


def _mlp(dim, hidden, act):
    return nn.Sequential(OrderedDict(fc1=nn.Linear(dim, hidden), act=act, fc2=nn.Linear(hidden, dim)))


class PostNorm(DiscriminatorBlock):
    def forward(self, x):
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


class NoAttnResidual(DiscriminatorBlock):
    def forward(self, x):
        x = self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class NoMlpResidual(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return self.mlp(self.norm2(x))


class NoResidualAtAll(DiscriminatorBlock):
    def forward(self, x):
        return self.mlp(self.norm2(self.attn(self.norm1(x))))


class NormalizedResidual(DiscriminatorBlock):
    def forward(self, x):
        h = self.norm1(x)
        x = h + self.attn(h)
        h = self.norm2(x)
        return h + self.mlp(h)


class SharedNorm(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm1(x))


class NormsSwapped(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm2(x))
        return x + self.mlp(self.norm1(x))


class MlpDiscarded(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        _ = x + self.mlp(self.norm2(x))
        return x


class MlpFirst(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.mlp(self.norm2(x))
        return x + self.attn(self.norm1(x))


class NoNormBeforeAttention(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(self.norm2(x))


class NoNormBeforeMlp(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(x)


class ParallelBranches(DiscriminatorBlock):
    """GPT-J style: both branches read the block's input; the MLP should read h'."""

    def forward(self, x):
        return x + self.attn(self.norm1(x)) + self.mlp(self.norm2(x))


class InPlaceResidual(DiscriminatorBlock):
    def forward(self, x):
        x += self.attn(self.norm1(x))
        x += self.mlp(self.norm2(x))
        return x


class DetachedBranch(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x)).detach()
        return x + self.mlp(self.norm2(x))


class DetachedSkip(DiscriminatorBlock):
    def forward(self, x):
        x = x.detach() + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CastsToFloat32(DiscriminatorBlock):
    def forward(self, x):
        x = x.float()
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DotProductBlock(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.attn = MultiHeadAttention(dim, num_heads)


class TorchAttentionBlock(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class FastIgnored(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.attn = L2MultiHeadAttention(dim, num_heads)


class FastPositional(DiscriminatorBlock):
    """fast lands in the qkv_bias slot: L2MultiHeadAttention(dim, num_heads, qkv_bias=True, fast=True)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.attn = L2MultiHeadAttention(dim, num_heads, fast)


class WrongHidden(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.mlp = _mlp(dim, dim, nn.GELU())


class CeilHidden(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.mlp = _mlp(dim, math.ceil(dim * mlp_ratio), nn.GELU())


class FloatHidden(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__()
        hidden = dim * mlp_ratio
        self.norm1 = nn.LayerNorm(dim)
        self.attn = L2MultiHeadAttention(dim, num_heads, fast=fast)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, hidden, nn.GELU())


class ReluMlp(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.mlp = _mlp(dim, int(dim * mlp_ratio), nn.ReLU())


class TanhGelu(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.mlp = _mlp(dim, int(dim * mlp_ratio), nn.GELU(approximate="tanh"))


class NoActivation(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(dim, hidden), fc2=nn.Linear(hidden, dim)))


class DropoutInMlp(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(dim, hidden), act=nn.GELU(), drop=nn.Dropout(0.1), fc2=nn.Linear(hidden, dim)
            )
        )


class NoAffineNorms(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)


class SharedNormInstance(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.norm2 = self.norm1


class OtherNames(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.ln_1 = self.norm1
        del self.norm1

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.norm2(x))


test_block_mistakes_are_named = mistakes_are_named(
    check_discriminator_block,
    [
        (PostNorm, r"post-norm.*pre-norm"),
        (NoAttnResidual, r"residual .*around the attention is missing"),
        (NoMlpResidual, r"residual .*around the MLP is missing"),
        (NoResidualAtAll, r"both residual .*connections are missing"),
        (NormalizedResidual, r"residual adds the NORMALIZED input"),
        (SharedNorm, r"norm1 is used twice"),
        (NormsSwapped, r"norm1 and norm2 are swapped"),
        (MlpDiscarded, r"MLP's result is discarded"),
        (MlpFirst, r"MLP runs before the attention"),
        (NoNormBeforeAttention, r"attention reads x itself.*norm1"),
        (NoNormBeforeMlp, r"MLP reads h' itself.*norm2"),
        (ParallelBranches, r"MLP branch reads the block's input x.*instead of h'"),
        (InPlaceResidual, r"in place.*x = x \+"),
        (DetachedBranch, r"no gradient reaches .*attn\..*detach"),
        (DetachedSkip, r"gradient .*input.*skip path.*detach"),
        (CastsToFloat32, r"float64.*float32"),
        (DotProductBlock, r"L2MultiHeadAttention.*tied.*not a dot-product"),
        (TorchAttentionBlock, r"L2MultiHeadAttention.*not a dot-product"),
        (FastIgnored, r"fast=False.*not passed on"),
        (FastPositional, r"qkv_bias.*fast=fast"),
        (WrongHidden, r"int\(dim \* mlp_ratio\)"),
        (CeilHidden, r"hidden width .*int\(dim \* mlp_ratio\)"),
        (FloatHidden, r"hidden width .*float.*int\(dim \* mlp_ratio\)"),
        (ReluMlp, r"MLP's activation.*ReLU.*GELU"),
        (TanhGelu, r"approximate='tanh'.*exact.*nn\.GELU\(\)"),
        (NoActivation, r"MLP has no activation.*GELU"),
        (DropoutInMlp, r"different outputs for the same input.*Dropout"),
        (NoAffineNorms, r"LayerNorm.*elementwise_affine"),
        (SharedNormInstance, r"norm2 is the same LayerNorm as norm1"),
        (OtherNames, r"name them norm1, attn, norm2, mlp"),
    ],
)


# ---- Exercise 5.1: correct alternatives ----


class UnnamedMlp(DiscriminatorBlock):
    """An unnamed nn.Sequential MLP."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Eps1e6(DiscriminatorBlock):
    """LayerNorm eps 1e-6 (timm's ViT): the exercise does not fix eps."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)


class OwnL2Attention(nn.Module):
    """A learner's own L2 attention (lesson 03's exercise), naive form, same parameter names."""

    def __init__(self, dim, num_heads, fast=True):
        super().__init__()
        self.num_heads, self.head_dim, self.fast = num_heads, dim // num_heads, fast
        self.qk, self.v, self.proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        q = self.qk(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)
        v = self.v(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        logits = -torch.cdist(q, q).square() / math.sqrt(self.head_dim)  # (B, H, N, N)
        out = logits.softmax(-1) @ v  # (B, H, N, Dh)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class WithOwnAttention(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.attn = OwnL2Attention(dim, num_heads, fast=fast)


class StepByStep(nn.Module):
    """Written from scratch, with named intermediates, an identity drop-path and a zero dropout."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = L2MultiHeadAttention(dim, num_heads, fast=fast)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(dim, hidden), act=nn.GELU(), fc2=nn.Linear(hidden, dim), drop=nn.Dropout(0.0)
            )
        )
        self.drop_path = nn.Identity()

    def forward(self, x):
        attended = self.attn(self.norm1(x))  # (B, N, D)
        h = x + self.drop_path(attended)
        mixed = self.mlp(self.norm2(h))
        return h + self.drop_path(mixed)


class UnnamedMlpWithDropout(DiscriminatorBlock):
    """An unnamed nn.Sequential with a Dropout(0.0): its Linears are mlp.0 and mlp.3."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim))


test_block_alternatives_pass = alternatives_pass(
    check_discriminator_block, [UnnamedMlp, Eps1e6, WithOwnAttention, StepByStep, UnnamedMlpWithDropout]
)


# ---- Exercise 5.2: wrong forwards, built from one parametrized forward ----


def make_disc(
    cls_at="first",
    pos="all",
    pool="cls",
    final_norm=True,
    act=None,
    squeeze="last",
    expand_cls=True,
    pos_order="cls first",
):
    """A ViTDiscriminator subclass whose forward makes the named mistake."""

    class Wrong(ViTDiscriminator):
        def forward(self, x):
            h = self.patch_embed(x)  # (B, N, D)
            cls = self.cls_token.expand(h.shape[0], -1, -1) if expand_cls else self.cls_token  # (B, 1, D)
            E_pos = self.pos_embed()  # (N, D)
            if cls_at == "first":
                h = torch.cat([cls, h], dim=1)
                parts = [self.cls_pos, E_pos] if pos_order == "cls first" else [E_pos, self.cls_pos]
                full = torch.cat(parts)
            elif cls_at == "last":
                h = torch.cat([h, cls], dim=1)
                full = torch.cat([E_pos, self.cls_pos])
            else:
                full = E_pos
            if pos == "all":
                h = h + full
            elif pos == "twice":
                h = h + full + full
            elif pos == "patches":
                h = h + torch.cat([torch.zeros_like(self.cls_pos), E_pos])
            for block in self.blocks:
                if pos == "every block":
                    h = h + full
                h = block(h)
            if pos == "after blocks":
                h = h + full
            y = {"cls": h[:, 0], "last": h[:, -1], "mean": h.mean(dim=1), "first patch": h[:, 1]}[pool]
            y = self.norm(y) if final_norm else y
            out = self.head(y)
            out = act(out) if act is not None else out
            return {"last": out.squeeze(-1), "all": out.squeeze(), "none": out}[squeeze]

    return Wrong


class NoBlocks(ViTDiscriminator):
    def forward(self, x):
        return self.head(self.norm(self.patch_embed(x)[:, 0])).squeeze(-1)


class BlocksNotChained(ViTDiscriminator):
    def forward(self, x):
        h = self.patch_embed(x)
        h = torch.cat([self.cls_token.expand(len(x), -1, -1), h], 1)
        h0 = h + torch.cat([self.cls_pos, self.pos_embed()])
        for block in self.blocks:
            h = block(h0)
        return self.head(self.norm(h[:, 0])).squeeze(-1)


class LastBlockOnly(ViTDiscriminator):
    def forward(self, x):
        h = torch.cat([self.cls_token.expand(len(x), -1, -1), self.patch_embed(x)], 1)
        h = self.blocks[-1](h + torch.cat([self.cls_pos, self.pos_embed()]))
        return self.head(self.norm(h[:, 0])).squeeze(-1)


class PosEmbedNotCalled(ViTDiscriminator):
    def forward(self, x):
        h = torch.cat([self.cls_token.expand(len(x), -1, -1), self.patch_embed(x)], 1)
        h = h + self.pos_embed
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, 0])).squeeze(-1)


class RescaledImages(ViTDiscriminator):
    """Maps the images to [0, 1] before the patch embedding."""

    def forward(self, x):
        return super().forward((x + 1) / 2)


class NegatedLogit(ViTDiscriminator):
    def forward(self, x):
        return -super().forward(x)


class DetachedCls(ViTDiscriminator):
    def forward(self, x):
        h = self.patch_embed(x)
        h = torch.cat([self.cls_token.detach().expand(len(x), -1, -1), h], 1)
        h = h + torch.cat([self.cls_pos, self.pos_embed()])
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, 0])).squeeze(-1)


class PosUnderNoGrad(ViTDiscriminator):
    def forward(self, x):
        h = torch.cat([self.cls_token.expand(len(x), -1, -1), self.patch_embed(x)], 1)
        with torch.no_grad():
            pos = torch.cat([self.cls_pos, self.pos_embed()])
        h = h + pos
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, 0])).squeeze(-1)


class ReturnsTokens(ViTDiscriminator):
    def forward(self, x):
        return self.tokens(x)


test_forward_mistakes_are_named = mistakes_are_named(
    check_discriminator_forward,
    [
        (make_disc(cls_at="last", pool="last"), r"CLS token is appended at the END"),
        (make_disc(cls_at="none", pool="mean"), r"CLS token is\s+absent"),
        (make_disc(pos="none"), r"E_pos is not added"),
        (make_disc(pos="patches"), r"cls_pos.*not added"),
        (make_disc(pos="twice"), r"E_pos is added twice"),
        (make_disc(pos="every block"), r"E_pos is added again before self\.blocks\[1\]"),
        (make_disc(pos="after blocks"), r"E_pos is not added.*before the blocks"),
        (make_disc(pos_order="cls last"), r"cls_pos.*first.*torch\.cat\(\[self\.cls_pos, self\.pos_embed"),
        (make_disc(pool="last"), r"LAST token is pooled"),
        (make_disc(pool="mean"), r"mean-pooled"),
        (make_disc(pool="first patch"), r"token 1.*first patch.*h\[:, 0\]"),
        (make_disc(final_norm=False), r"final LayerNorm is missing"),
        (make_disc(act=F.gelu), r"clips them from below.*GELU|GELU after the final logit"),
        (make_disc(act=torch.sigmoid), r"bounds them.*sigmoid|sigmoid after the final logit"),
        (make_disc(act=torch.tanh), r"bounds them.*tanh|tanh after the final logit"),
        (make_disc(act=F.softplus), r"clips them from below|softplus after the final logit"),
        (make_disc(act=lambda t: 3 * torch.tanh(t)), r"clips them from below|bounds them"),
        (make_disc(squeeze="none"), r"shape \(B, 1\).*squeeze"),
        (make_disc(squeeze="all"), r"batch of 1.*\.squeeze\(\) .*batch axis.*squeeze\(-1\)"),
        (make_disc(expand_cls=False), r"cls_token.*\(1, 1, D\).*expand\(B, -1, -1\)"),
        (NoBlocks, r"never runs self.blocks"),
        (BlocksNotChained, r"self\.blocks\[1\] gets h_0 instead of the previous block's output"),
        (LastBlockOnly, r"only 1 of the 2 blocks|self\.blocks\[1\] runs before self\.blocks\[0\]"),
        (PosEmbedNotCalled, r"self\.pos_embed is a module.*self\.pos_embed\(\)"),
        (RescaledImages, r"patch tokens differ from self\.patch_embed\(x\).*images as they are"),
        (NegatedLogit, r"sign.*negated"),
        (DetachedCls, r"no gradient reaches cls_token.*detach"),
        (PosUnderNoGrad, r"no gradient reaches (pos_embed|cls_pos).*(no_grad|detach)"),
        (ReturnsTokens, r"should have shape \(3,\)|logits have shape"),
    ],
)


# ---- Exercise 5.2: correct alternatives ----


class PositionsAddedBeforeConcat(ViTDiscriminator):
    """E_pos added to each part before the concatenation: the same h_0."""

    def forward(self, x):
        patches = self.patch_embed(x) + self.pos_embed()  # (B, N, D)
        cls = (self.cls_token + self.cls_pos).repeat(x.shape[0], 1, 1)  # (B, 1, D)
        h = torch.cat((cls, patches), dim=1)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h)[:, 0]).flatten()


class HeadOnAllTokens(ViTDiscriminator):
    """Norm and head on every token (both act per token), then the CLS logit."""

    def forward(self, x):
        h = torch.cat([self.cls_token.expand(x.size(0), -1, -1), self.patch_embed(x)], dim=1)
        h = h + torch.cat([self.cls_pos, self.pos_embed()], dim=0).unsqueeze(0)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))[:, 0, 0]


class ViaTokens(ViTDiscriminator):
    """self.tokens does the first half (the exercise asks not to, but it is correct)."""

    def forward(self, x):
        return self.head(self.norm(self.tokens(x)[:, 0])).view(-1)


test_forward_alternatives_pass = alternatives_pass(
    check_discriminator_forward, [make_disc(), PositionsAddedBeforeConcat, HeadOnAllTokens, ViaTokens]
)


def test_crash_in_learner_code_is_reported_with_its_cause():
    class Crashes(ViTDiscriminator):
        def forward(self, x):
            return self.patch_embed(x) + self.pos_embed().T  # (N, D) transposed: shape error

    assert_rejects(check_discriminator_forward, Crashes, r"your code raised RuntimeError")
