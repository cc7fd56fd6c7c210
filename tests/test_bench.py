"""Tests of vitgan_lite/run/bench.py: the naive variant equals the fast one; FLOPs; the bench command."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from helpers import TINY_RUN, tiny_config
from torch.utils import flop_counter

import vitgan_lite.run.bench as bench_mod
from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.inr import ModulatedLinear
from vitgan_lite.run.bench import (
    BenchResult,
    FlopSplit,
    ModuleFlops,
    SavedTensorBytes,
    ScalingRow,
    SeparatePasses,
    bench_preset,
    compile_off,
    compile_parts,
    count_flops,
    eager_parts,
    format_table,
    make_naive,
    measure_iteration,
    naive_parts,
    random_images,
    scaling_table,
    split_flops,
    state_bytes,
)
from vitgan_lite.run.cli import main
from vitgan_lite.run.trainer import Autocast, build_networks, build_parts

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


# ---- torch.compile in the benchmark ----------------------------------------------------------------


def test_compile_off_accepts_a_bool_or_a_mode_field():
    cfg = _tiny_cfg()
    off = compile_off(cfg)
    assert off.compile in (False, "off")
    assert compile_off(off).compile == off.compile


def test_compile_parts_keeps_autocast_outermost_and_one_compiled_d():
    """As build_parts: Autocast(compiled(module)); the G step's D is the D step's compiled D."""
    cfg = _tiny_cfg()
    parts = build_parts(compile_off(cfg), CPU, random_images(cfg, 8))
    G, D = parts.G, parts.D
    # the wrapping a GPU run has (bf16 autocast around the networks), without running anything
    mixed = dataclasses.replace(
        parts, G_fwd=Autocast(G, "cpu", torch.bfloat16), D_fwd=Autocast(D, "cpu", torch.bfloat16),
        D_for_g=Autocast(D, "cpu", torch.bfloat16),
    )  # fmt: skip
    comp = compile_parts(mixed, backend="eager")
    for m, inner in ((comp.G_fwd, G), (comp.D_fwd, D), (comp.D_for_g, D)):
        assert isinstance(m, Autocast) and m.dtype == torch.bfloat16
        assert m.module is not inner and m.module._orig_mod is inner  # compiled inside the wrapper
    assert comp.D_for_g.module is comp.D_fwd.module
    plain = compile_parts(parts, backend="eager")
    assert plain.D_for_g is plain.D_fwd and plain.G_fwd._orig_mod is G
    back = eager_parts(comp)  # every compile wrapper removed, Autocast kept
    assert back.G_fwd.module is G and back.D_fwd.module is D and back.D_for_g.module is D


def test_compiled_iterations_compute_the_eager_losses():
    """Same weights, same seed: the compiled iteration (aot_eager: traced through autograd, no kernels
    generated) gives the eager losses, spectral norm's power iteration included."""
    torch._dynamo.reset()
    cfg = compile_off(_tiny_cfg())
    images = random_images(cfg, 16)
    models = build_networks(cfg, CPU)
    eager = eager_parts(build_parts(cfg, CPU, images, models=models))
    comp = compile_parts(build_parts(cfg, CPU, images, models=models), backend="aot_eager")
    for _ in range(2):
        a, b = eager.iteration(), comp.iteration()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    for (name, b1), b2 in zip(eager.D.named_buffers(), comp.D.buffers()):  # ISN u, v advanced alike
        torch.testing.assert_close(b2, b1, rtol=1e-4, atol=1e-5, msg=name)


def test_bench_compile_on_the_cpu_prints_an_eager_and_a_compiled_row(capsys, monkeypatch):
    results = []
    monkeypatch.setattr(bench_mod, "format_table", lambda rs: results.extend(rs) or real_format_table(rs))
    args = ["bench", "--presets", "tiny-cpu", "--device", "cpu", "--iters", "1", "--batch-size", "2"]
    assert main([*args, "--no-naive", "--compile", "--compile-backend", "eager"]) == 0
    out = capsys.readouterr().out
    assert "+ torch.compile" in out and "compile s" in out and "torch.compile (eager)" in out
    (r,) = results
    assert r.naive_iter_ips is None and r.compile_backend == "eager"
    assert r.compiled_iter_ips > 0 and math.isfinite(r.compiled_iter_ips)
    assert r.compile_s is not None and r.compile_s >= 0
    assert r.compile_speedup == pytest.approx(r.compiled_iter_ips / r.iter_ips)


def test_compile_columns_match_a_hand_computation():
    r = BenchResult(
        preset="p", device="cpu", batch_size=4, iters=1, iter_ips=8.0, naive_iter_ips=2.0, g_fwd_ips=1.0,
        d_fwd_bwd_ips=1.0, peak_mem_mb=0.0, mem_kind="m", flops_per_iter=10**9, matmul_flops_per_s=4e9,
        compiled_iter_ips=12.0, compile_s=42.0, compile_backend="inductor",
    )  # fmt: skip
    assert r.compile_speedup == pytest.approx(1.5)  # 12 / 8
    assert r.compiled_flops_per_s == pytest.approx(3e9)  # 3 iterations/s x 1 GFLOP
    assert r.best_iter_ips == 12.0
    table = format_table([r])
    compiled_row = next(line for line in table.splitlines() if line.startswith("  + torch.compile"))
    assert "6.00x" in compiled_row and "42.0" in compiled_row and "1.50x" in compiled_row  # vs naive 12/2


@pytest.mark.slow
def test_bench_compiles_with_inductor_on_the_cpu():
    """The real compiler on the CPU (C++ kernels; a minute or more when its cache is cold)."""
    r = bench_preset(
        "tiny-cpu", "cpu", iters=1, batch_size=2, rounds=1, naive=False, compile=True,
        overrides={k: v for k, v in _tiny_cfg().to_dict().items() if k in TINY_RUN},
    )  # fmt: skip
    assert r.compile_backend == "inductor" and r.compiled_iter_ips > 0 and r.compile_s >= 0


# ---- FLOP split, saved bytes and the scaling table --------------------------------------------------


def test_cpu_attention_kernel_is_counted():
    q = torch.randn(3, 2, 5, 4)  # (B, H, N, Dh)
    # logits q k^T and attention x values: 2 matmuls of 2 * B * H * N * N * Dh FLOPs each = 2400
    assert count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)) == 2400


def test_module_flops_charges_forward_and_backward_to_the_module_that_ran_them():
    attn = MultiHeadAttention(8, 2)  # fast: scaled_dot_product_attention
    x = torch.randn(3, 5, 8, requires_grad=True)  # (B, N, D)
    counter = ModuleFlops({"A": attn})
    with counter:
        attn(x).sum().backward()
    qkv = 2 * 15 * 8 * 24  # (15 tokens x 8) @ (8 x 24)
    proj = 2 * 15 * 8 * 8
    sdpa = 2 * (2 * 3 * 2 * 5 * 5 * 4)  # forward: q k^T and attention x values
    sdpa_bwd = flop_counter.sdpa_backward_flop_count((3, 2, 5, 4), (3, 2, 5, 4), (3, 2, 5, 4), (3, 2, 5, 4))
    # forward, then the backward's gradient of the input and of the weight: three matmuls per Linear
    assert counter.flops["A.qkv"] == 3 * qkv and counter.flops["A.proj"] == 3 * proj
    assert counter.flops["A"] == sdpa + sdpa_bwd  # the attention module itself: only the N^2 kernel
    split = split_flops(counter.flops, {"G": attn})  # named G: the module is an attention module
    assert split == FlopSplit(attention=0, decoder=0, rest=sum(counter.flops.values()))  # "A" is not "G"
    split = split_flops(counter.flops, {"A": attn})
    assert split.attention == sdpa + sdpa_bwd and split.rest == 3 * (qkv + proj) and split.decoder == 0


def test_flop_split_of_an_iteration_adds_up_to_the_flop_count():
    cfg = compile_off(_tiny_cfg())
    images = random_images(cfg, 16)
    models = build_networks(cfg, CPU)
    a, b = (build_parts(cfg, CPU, images, models=models) for _ in range(2))
    total = count_flops(a.iteration)
    split, saved = measure_iteration(b)
    assert split.total == total
    assert split.attention > 0 and split.decoder > 0 and split.rest > 0
    assert saved > 0
    # the state: G, D and G_ema's weights, G and D's gradients and Adam's two moments, all float32. A
    # gradient can be a view of a larger buffer that it keeps alive (D's cls_pos: a slice of the gradient
    # of a concatenation), so gradients count by storage.
    n_g, n_d = (sum(p.numel() for p in m.parameters()) for m in (b.G, b.D))
    buffers = sum(t.nbytes for m in (b.G, b.D, b.G_ema) for t in m.buffers())
    steps = sum(st["step"].nbytes for opt in (b.opt_g, b.opt_d) for st in opt.state.values())
    grads = {p.grad.untyped_storage().data_ptr(): p.grad.untyped_storage().nbytes() for p in b.G.parameters()}
    grads.update(
        {p.grad.untyped_storage().data_ptr(): p.grad.untyped_storage().nbytes() for p in b.D.parameters()}
    )
    assert sum(grads.values()) >= 4 * (n_g + n_d)
    assert state_bytes(b) == 4 * (2 * n_g + n_d) + sum(grads.values()) + 8 * (n_g + n_d) + buffers + steps


def test_saved_tensor_bytes_counts_each_storage_once_per_step():
    w = torch.randn(8, 3, requires_grad=True)
    x = torch.randn(4, 8, requires_grad=True)  # (4, 8): 128 bytes
    saved = SavedTensorBytes(exclude=[w])
    with saved:
        h = x @ w  # saves x (and w, excluded)
        y = h.relu()  # saves its output, (4, 3): 48 bytes
        (
            y * y[:, :1]
        ).sum().backward()  # y twice (a view of it): counted once; y * y saves them: no new storage
        saved.next_step()
        (x.sin()).sum().backward()  # saves x again, in the second step
    assert saved.steps == [{x.data_ptr(): 128, y.data_ptr(): 48}, {x.data_ptr(): 128}]
    assert saved.peak == 176


def test_scaling_table_rows_and_sentences(capsys):
    rows = scaling_table("tiny-cpu", "cpu", batch_sizes=(2,), sizes=((32, 4), (64, 8)), size_batch=2, iters=1)
    out = capsys.readouterr().out
    assert [(r.axis, r.batch_size, r.image_size, r.patch_size, r.tokens) for r in rows] == [
        ("batch", 2, 32, 4, 64), ("size", 2, 32, 4, 64), ("size", 2, 64, 8, 64),
    ]  # fmt: skip
    assert rows[0].flops == rows[1].flops  # one configuration, measured once
    small, big = rows[1], rows[2]
    # same tokens, 4x the pixels: the per-pixel decoder's share grows
    assert big.flops.decoder > 3 * small.flops.decoder and big.flops.share("decoder") > small.flops.share(
        "decoder"
    )
    for r in rows:
        assert r.iter_ips > 0 and r.memory_bytes == r.saved_bytes + r.state_bytes > 0
        assert sum(r.flops.share(t) for t in ("attention", "decoder", "rest")) == pytest.approx(1.0)
    assert "against batch size" in out and "against image size and tokens" in out
    assert "64x64, P=8, batch 2: 64 tokens; attention N^2 term" in out and "of FLOPs, decoder" in out


def test_scaling_sentence_names_the_dominant_term():
    row = ScalingRow(
        axis="size", preset="p", device="cpu", batch_size=32, image_size=64, patch_size=4, iters=1,
        iter_ips=1.0, flops=FlopSplit(attention=41, decoder=22, rest=37), saved_bytes=0, state_bytes=0,
    )  # fmt: skip
    assert row.tokens == 256
    assert row.sentence() == (
        "64x64, P=4, batch 32: 256 tokens; attention N^2 term 41% of FLOPs, decoder 22%, per-token layers "
        "37%: the quadratic attention term is the largest term (41%)"
    )
    row.flops = FlopSplit(attention=10, decoder=20, rest=70)
    assert row.sentence().endswith("the per-token layers (linear layers and MLPs) dominate (70%)")


def test_bench_scaling_command(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(bench_mod, "scaling_table", lambda *a, **k: calls.append((a, k)) or [])
    assert main(["bench", "--scaling", "--device", "cpu"]) == 0
    assert calls == [(("tiny-cpu", "cpu"), {"size_batch": None, "iters": None})]
    assert main(["bench", "--scaling", "--presets", "seed-report-cifar10", "--batch-size", "8"]) == 0
    assert calls[-1] == (("seed-report-cifar10", None), {"size_batch": 8, "iters": None})
    assert main(["bench", "--scaling", "--compile"]) == 2
    assert "drop --compile" in capsys.readouterr().err


def test_gemm_table_times_every_product_plain_in_blocks_and_as_the_trainer_runs_them(capsys, monkeypatch):
    import vitgan_lite.linear as linear_mod
    import vitgan_lite.run.trainer as trainer_mod

    monkeypatch.setattr(linear_mod, "MIN_WEIGHT", 1)  # tiny layers: block them anyway
    monkeypatch.setattr(trainer_mod, "ROW_BLOCK", 32)
    report = bench_mod.gemm_table("tiny-cpu", "cpu", batch_size=2, blocks=(32, 64), iters=1)
    out = capsys.readouterr().out
    assert report.rows and all(r.calls >= 1 and r.plain_s > 0 for r in report.rows)
    for r in report.rows:  # a block size is timed only where the input has MIN_BLOCKS blocks of rows
        assert set(r.blocked_s) == {b for b in (32, 64) if r.m >= linear_mod.MIN_BLOCKS * b}
    # the D step's one D pass over 4 x 2 images of 65 tokens: 520 rows, cut into 32-row blocks by the trainer
    assert any(r.m == 520 for r in report.rows) and not any(r.m == 520 for r in report.trainer_rows)
    assert any(r.m == 32 for r in report.trainer_rows) and any(r.m == 520 % 32 for r in report.trainer_rows)

    def flop(rows):
        return sum(r.calls * r.flop for r in rows)

    assert flop(report.trainer_rows) == flop(report.rows)  # the blocks split the same products
    assert 0.5 * report.flops_per_iter < flop(report.rows) <= report.flops_per_iter
    assert report.iter_s > 0 and report.iter_plain_s > 0
    assert "products alone, plain (a bound)" in out and "the iteration, eager, plain" in out
    assert "M x K x N" in out and "32 rows" in out


def test_gemm_report_arithmetic_matches_a_hand_computation():
    row = bench_mod.GemmRow(op="mm", m=4, k=5, n=6, calls=3, plain_s=0.5, blocked_s={})
    assert row.flop == 2 * 4 * 5 * 6
    blocks = bench_mod.GemmRow(op="mm", m=2, k=5, n=6, calls=6, plain_s=0.2, blocked_s={})
    report = bench_mod.GemmReport(
        preset="p", device="cpu", batch_size=1, rows=[row], trainer_rows=[blocks],
        matmul_flops_per_s=100.0, flops_per_iter=300, iter_s=2.0, iter_plain_s=3.0,
    )  # fmt: skip
    assert report.gemm_s() == pytest.approx(1.5) and report.gemm_s(trainer=True) == pytest.approx(1.2)
    assert report.efficiency(1.5) == pytest.approx(300 / 1.5 / 100)
    text = bench_mod.format_gemm(report, blocks=(2,))
    assert "4 x 5 x 6" in text and "-" in text  # no 2-row blocks timed for it: a dash


def test_bench_gemm_command(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(bench_mod, "gemm_table", lambda *a, **k: calls.append((a, k)))
    assert main(["bench", "--gemm", "--device", "cpu"]) == 0
    assert calls == [(("seed-report-cifar10", "cpu"), {"batch_size": None, "iters": 3})]
    assert main(["bench", "--gemm", "--presets", "tiny-cpu", "--batch-size", "8", "--iters", "2"]) == 0
    assert calls[-1] == (("tiny-cpu", None), {"batch_size": 8, "iters": 2})
    assert main(["bench", "--gemm", "--compile"]) == 2
    assert "without --scaling and --compile" in capsys.readouterr().err
