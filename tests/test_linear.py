"""Tests of vitgan_lite/linear.py: row-blocked linear layers give nn.Linear's numbers, only in blocks."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import tiny_config
from torch import nn

import vitgan_lite.linear as linear_mod
from vitgan_lite.linear import MIN_BLOCKS, MIN_WEIGHT, ROW_BLOCK, Linear, linear_in_row_blocks, set_row_block
from vitgan_lite.run.bench import naive_parts, random_images
from vitgan_lite.run.trainer import build_networks, build_parts
from vitgan_lite.spectral import ISN, apply_spectral_norm, spectral_parametrization

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def small_layers_use_blocks(monkeypatch):
    """The tests' layers are tiny: let them run in blocks (the width rule has its own test)."""
    monkeypatch.setattr(linear_mod, "MIN_WEIGHT", 1)


def _pair(in_dim: int, out_dim: int, block: int, bias: bool = True) -> tuple[Linear, Linear]:
    torch.manual_seed(0)
    plain = Linear(in_dim, out_dim, bias=bias)
    blocked = copy.deepcopy(plain)
    blocked.row_block = block
    return plain, blocked


def _grads(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    y = layer(x)
    y.backward(g)
    grads = [x.grad] + [p.grad for p in layer.parameters()]
    return (y.detach(), *grads)


@pytest.mark.parametrize(
    "shape, in_dim, out_dim, bias",
    [
        ((40, 6), 6, 5, True),  # rows a multiple of the block
        ((3, 15, 6), 6, 7, True),  # leading axes, 45 rows: a last block of 5
        ((41, 6), 6, 3, False),  # no bias
    ],
)
def test_blocked_layer_gives_nn_linears_outputs_and_gradients_bit_for_bit(shape, in_dim, out_dim, bias):
    plain, blocked = _pair(in_dim, out_dim, block=8, bias=bias)
    torch.manual_seed(1)
    x = torch.randn(shape)
    g = torch.randn(*shape[:-1], out_dim)
    ref, got = _grads(plain, x, g), _grads(blocked, x, g)
    assert got[0].shape == (*shape[:-1], out_dim)
    for name, a, b in zip(("output", "x.grad", "weight.grad", "bias.grad"), ref, got):
        assert torch.equal(a, b), name
    # a hand computation of the plain layer, so the comparison cannot pass by both being wrong alike
    want = x @ plain.weight.detach().t() + (plain.bias.detach() if bias else 0.0)
    torch.testing.assert_close(got[0], want, rtol=1e-5, atol=1e-6)


def _blocked(y: torch.Tensor) -> bool:
    """Whether the autograd graph of ``y`` holds the row-blocked product."""
    todo, seen = [y.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "RowBlockedLinear" in type(node).__name__:
            return True
        todo.extend(fn for fn, _ in node.next_functions)
    return False


def test_blocks_are_used_only_from_min_blocks_blocks_of_rows():
    block = 4
    _, blocked = _pair(3, 2, block=block)
    few = blocked(torch.randn(MIN_BLOCKS * block - 1, 3, requires_grad=True))
    many = blocked(torch.randn(MIN_BLOCKS * block, 3, requires_grad=True))
    assert not _blocked(few)  # one product, as nn.Linear
    assert _blocked(many)
    off = Linear(3, 2)
    assert off.row_block is None and not _blocked(off(torch.randn(99, 3)))


def test_only_layers_with_min_weight_weights_use_blocks(monkeypatch):
    monkeypatch.setattr(linear_mod, "MIN_WEIGHT", MIN_WEIGHT)  # the real rule
    assert MIN_WEIGHT == 256 * 256
    x = torch.randn(MIN_BLOCKS * 2, 256, requires_grad=True)
    wide, narrow = Linear(256, 256), Linear(256, 255)  # 65,536 and 65,280 weights
    wide.row_block = narrow.row_block = 2
    assert _blocked(wide(x)) and not _blocked(narrow(x))


def test_linear_is_an_nn_linear_with_the_same_state_dict():
    torch.manual_seed(0)
    ref = nn.Linear(5, 4)
    torch.manual_seed(0)
    ours = Linear(5, 4)
    assert isinstance(ours, nn.Linear)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))
    ours.row_block = 2
    assert "row_block" not in ours.state_dict()  # a speed knob, not saved in checkpoints


def test_isn_weight_is_read_once_per_forward():
    # ISN runs a power-iteration step each time the weight is read in training: the blocked forward must
    # read it once, like nn.Linear, or u would advance once per block.
    torch.manual_seed(0)
    plain = apply_spectral_norm(Linear(6, 5), "isn")
    blocked, twice = copy.deepcopy(plain), copy.deepcopy(plain)
    blocked.row_block = 4
    x = torch.randn(40, 6)
    plain(x), blocked(x)
    for _ in range(2):  # two reads: two steps, what a per-block read would do
        _ = twice.weight
    pa, pb, pt = (spectral_parametrization(m) for m in (plain, blocked, twice))
    assert isinstance(pb, ISN)
    assert torch.equal(pa.u, pb.u) and torch.equal(pa.v, pb.v)
    assert not torch.equal(pa.u, pt.u)  # the comparison can tell one step from two
    assert torch.equal(plain(x), blocked(x))


def test_double_backward_matches_nn_linear():
    plain, blocked = _pair(6, 5, block=4)
    x = torch.randn(40, 6)
    out = []
    for layer in (plain, blocked):
        xi = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(torch.sin(layer(xi)).sum(), xi, create_graph=True)
        (gw,) = torch.autograd.grad(gx.square().sum(), layer.weight)  # an R1-style penalty's gradient
        out.append((gx.detach(), gw))
    torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out[1][1], out[0][1], rtol=1e-5, atol=1e-6)


def test_compiled_blocked_layer_matches_eager():
    plain, blocked = _pair(6, 5, block=4)
    compiled = torch.compile(copy.deepcopy(blocked), backend="aot_eager")
    x = torch.randn(40, 6)
    g = torch.randn(40, 5)
    ref, got = _grads(plain, x, g), _grads(compiled, x, g)
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_bad_arguments_say_what_to_change():
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 6\)"):
        linear_in_row_blocks(torch.randn(10, 5), torch.randn(3, 6), block=2)
    with pytest.raises(ValueError, match="positive number of rows"):
        linear_in_row_blocks(torch.randn(10, 6), torch.randn(3, 6), block=0)
    with pytest.raises(ValueError, match="positive number of rows or None"):
        set_row_block(Linear(2, 2), 0)


def test_set_row_block_reaches_every_block_layer_of_g_and_d():
    G, D = build_networks(tiny_config(), CPU)
    for net in (G, D):
        layers = [m for m in net.modules() if isinstance(m, Linear)]
        assert layers and all(m.row_block is None for m in layers)  # off unless the trainer turns it on
        assert set_row_block(net, 16) == len(layers)
        assert all(m.row_block == 16 for m in layers)
        assert set_row_block(net, None) == len(layers) and all(m.row_block is None for m in layers)


def test_trainer_blocks_on_the_cpu_and_the_naive_variant_does_not():
    cfg = tiny_config(batch_size=2)
    images = random_images(cfg, n=8)
    models = build_networks(cfg, CPU)
    fast = build_parts(cfg, CPU, images, models=models)
    for net in (fast.G, fast.D, fast.G_ema):
        assert {m.row_block for m in net.modules() if isinstance(m, Linear)} == {ROW_BLOCK}
    off = build_parts(cfg, CPU, images, models=models, row_blocks=False)
    slow = naive_parts(cfg, CPU, images, models)
    for net in (off.G, off.D, slow.G, slow.D):
        assert {m.row_block for m in net.modules() if isinstance(m, Linear)} == {None}
    assert all(m.row_block is None for m in models[1].modules() if isinstance(m, Linear))  # copies only


def test_training_with_blocks_is_bit_identical_to_training_without(monkeypatch):
    import vitgan_lite.run.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "ROW_BLOCK", 16)  # tiny-cpu at batch 2: D's 520 rows in 16-row blocks
    cfg = tiny_config(batch_size=2)
    images = random_images(cfg, n=8)
    models = build_networks(cfg, CPU)
    blocked = build_parts(cfg, CPU, images, models=models, row_blocks=True)
    plain = build_parts(cfg, CPU, images, models=models, row_blocks=False)
    for _ in range(2):
        a, b = blocked.iteration(), plain.iteration()
        assert all(torch.equal(a[k], b[k]) for k in a), {k: (a[k], b[k]) for k in a}
    for x, y in ((blocked.G, plain.G), (blocked.D, plain.D), (blocked.G_ema, plain.G_ema)):
        assert all(torch.equal(p, q) for p, q in zip(x.state_dict().values(), y.state_dict().values()))
    shapes = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: shapes.append(args[0].shape) if isinstance(m, Linear) else None
    )
    try:
        blocked.iteration()
    finally:
        hook.remove()
    assert any(s.numel() // s[-1] >= MIN_BLOCKS * 16 for s in shapes)  # the blocks were really used


def test_under_autocast_the_layer_runs_as_nn_linear():
    plain, blocked = _pair(6, 5, block=4)
    x = torch.randn(40, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = plain(x), blocked(x)
    assert a.dtype == b.dtype == torch.bfloat16 and torch.equal(a, b) and not _blocked(b)
    b.float().sum().backward()
    assert blocked.weight.grad is not None and blocked.weight.grad.dtype == torch.float32
