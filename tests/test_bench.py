"""Tests of vitgan_lite/run/bench.py: the naive variant equals the fast one; FLOPs; the bench command."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_config

import vitgan_lite.run.bench as bench_mod
from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.inr import ModulatedLinear
from vitgan_lite.run.bench import (
    BenchResult,
    SeparatePasses,
    bench_preset,
    count_flops,
    format_table,
    make_naive,
    naive_parts,
    random_images,
)
from vitgan_lite.run.cli import main
from vitgan_lite.run.trainer import build_networks, build_parts

CPU = torch.device("cpu")
real_format_table = format_table


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_cfg(**overrides):
    return tiny_config(**{"g_decoder_dim": 12, "batch_size": 3, **overrides})


def test_make_naive_flips_every_fast_path_and_keeps_the_function():
    cfg = _tiny_cfg()
    G, D = build_networks(cfg, CPU)
    nG, nD = make_naive(G), make_naive(D)
    kinds = (MultiHeadAttention, L2MultiHeadAttention)
    attn = [m for m in (*nG.modules(), *nD.modules()) if isinstance(m, kinds)]
    assert attn and all(not m.fast for m in attn)
    mods = [m for m in nG.modules() if isinstance(m, ModulatedLinear)]
    assert mods and all(not m.fast for m in mods)  # the explicit (B, O, I) weights of lesson 07
    assert all(m.fast for m in G.modules() if isinstance(m, (MultiHeadAttention, L2MultiHeadAttention)))
    assert all(p is not q for p, q in zip(G.parameters(), nG.parameters()))  # a copy, not the same weights
    z = torch.randn(5, cfg.latent_dim, generator=torch.Generator().manual_seed(0))  # (5, Z), odd batch
    with torch.no_grad():
        G.eval(), nG.eval(), D.eval(), nD.eval()  # eval: no power-iteration update between the two calls
        x, nx = G(z), nG(z)  # (5, C, H, W)
        torch.testing.assert_close(nx, x, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(nD(x), D(x), rtol=1e-5, atol=1e-5)


def test_naive_and_fast_iterations_compute_the_same_losses():
    """Same weights, same seed: two full iterations (D step, G step, EMA) agree in every loss and weight."""
    cfg = _tiny_cfg()
    images = random_images(cfg, 16)
    models = build_networks(cfg, CPU)
    fast = build_parts(cfg, CPU, images, models=models)  # the trainer's parts
    slow = naive_parts(cfg, CPU, images, models)
    assert isinstance(slow.D_fwd, SeparatePasses) and slow.opt_d.defaults["foreach"] is False
    for _ in range(2):
        a, b = fast.iteration(), slow.iteration()
        assert set(b) == set(a)
        for key in b:
            assert torch.isfinite(a[key]), key
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    for (name, p), q in zip(fast.G_ema.named_parameters(), slow.G_ema.parameters()):
        if name.endswith("attn.qkv.bias"):
            # The key bias shifts every logit of a row alike, so its gradient is zero analytically: what
            # float32 rounding leaves there, Adam (beta1 = 0) turns into steps of random sign, differently
            # in the two implementations. Compare the query and value biases only.
            d = p.shape[0] // 3
            p, q = torch.cat([p[:d], p[2 * d :]]), torch.cat([q[:d], q[2 * d :]])
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    for (name, b1), b2 in zip(fast.D.named_buffers(), slow.D.buffers()):  # ISN u, v advanced alike
        torch.testing.assert_close(b2, b1, rtol=1e-4, atol=1e-5, msg=name)


def test_count_flops_matches_a_hand_count():
    a, b = torch.randn(4, 8), torch.randn(8, 3)  # (4, 8), (8, 3)
    # a (4 x 8) @ (8 x 3) product: 4 * 3 outputs, each 8 multiplies and 8 adds = 2 * 4 * 8 * 3 = 192
    assert count_flops(lambda: a @ b) == 192
    lin = torch.nn.Linear(8, 5)
    x = torch.randn(7, 8)  # (7, 8)
    assert count_flops(lambda: lin(x)) == 2 * 7 * 8 * 5  # addmm: the bias add is not counted


def test_bench_result_ratios_match_a_hand_computation():
    r = BenchResult(
        preset="p", device="cpu", batch_size=4, iters=1, iter_ips=8.0, naive_iter_ips=2.0, g_fwd_ips=1.0,
        d_fwd_bwd_ips=1.0, peak_mem_mb=0.0, mem_kind="m", flops_per_iter=10**9, matmul_flops_per_s=4e9,
    )  # fmt: skip
    # 8 img/s at batch 4 = 2 iterations/s x 1 GFLOP = 2 GFLOP/s; over a 4 GFLOP/s matmul: 0.5
    assert r.achieved_flops_per_s == pytest.approx(2e9)
    assert r.efficiency == pytest.approx(0.5)
    assert r.speedup == pytest.approx(4.0)  # 8 / 2
    assert "4.00x" in format_table([r])


def test_bench_refuses_bad_arguments(capsys):
    with pytest.raises(ValueError, match="iters and rounds must be >= 1"):
        bench_preset("tiny-cpu", "cpu", iters=0)
    assert main(["bench", "--presets", "tiny-cpu,nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["bench", "--presets", "tiny-cpu", "--iters", "0"]) == 2
    assert "--iters must be at least 1" in capsys.readouterr().err


def test_bench_command_prints_the_table(capsys, monkeypatch):
    results = []
    monkeypatch.setattr(bench_mod, "format_table", lambda rs: results.extend(rs) or real_format_table(rs))
    args = ["bench", "--presets", "tiny-cpu", "--device", "cpu", "--iters", "1", "--batch-size", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tiny-cpu" in out and "GFLOP/iter" in out and "ru_maxrss" in out
    (r,) = results
    for value in (r.iter_ips, r.naive_iter_ips, r.g_fwd_ips, r.d_fwd_bwd_ips, r.matmul_flops_per_s):
        assert value is not None and math.isfinite(value) and value > 0
    assert r.flops_per_iter > 0 and r.efficiency > 0 and r.batch_size == 2
