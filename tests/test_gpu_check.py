"""Tests of tools/gpu_check.py: the peak table, the arithmetic of its columns, and the whole script run
tiny on the CPU (--allow-cpu: tiny-cpu at batch 4, compile with the tracing-only backend, seconds of
training, no FID)."""

from __future__ import annotations

import pytest
import torch

from tools import gpu_check
from vitgan_lite.run.bench import BenchResult

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "name,peak,label",
    [
        ("NVIDIA H200", 989e12, "H200"),
        ("NVIDIA H100 80GB HBM3", 989e12, "H100 SXM"),
        ("NVIDIA H100 PCIe", 756e12, "H100 PCIe"),
        ("NVIDIA A100-SXM4-80GB", 312e12, "A100"),
        ("NVIDIA L4", 121e12, "L4"),
        ("NVIDIA A10G", 70e12, "A10G"),
        ("Tesla T4", 65e12, "T4"),
        ("Tesla V100-SXM2-16GB", 125e12, "V100"),
        ("NVIDIA GeForce RTX 4090", 165e12, "RTX 4090"),
        ("NVIDIA H100 NVL", None, "unknown"),  # neither the SXM nor the PCIe figure
        ("NVIDIA GeForce GTX 1080", None, "unknown"),
    ],
)
def test_peak_flops_by_device_name(name, peak, label):
    got, got_label, note = gpu_check.peak_flops(name)
    assert (got, got_label) == (peak, label)
    if label in ("T4", "V100"):
        assert "no bf16" in note
    if peak is None:
        assert "MFU unknown" in note


def test_columns_match_a_hand_computation():
    r = BenchResult(
        preset="p", device="cuda:0", batch_size=128, iters=40, iter_ips=1000.0, naive_iter_ips=None,
        g_fwd_ips=1.0, d_fwd_bwd_ips=1.0, peak_mem_mb=2048.0, mem_kind="m", flops_per_iter=10**12,
        matmul_flops_per_s=700e12, compiled_iter_ips=1280.0, compile_s=50.0,
    )  # fmt: skip
    row = gpu_check.PresetFigures("p", r, steps=500_000)
    assert row.ips == 1280.0  # the faster variant
    assert row.achieved_flops_per_s == pytest.approx(10e12)  # 10 iterations/s x 1 TFLOP
    assert row.mfu(1000e12) == pytest.approx(0.01) and row.mfu(None) is None
    assert row.seconds_per_steps(1000) == pytest.approx(100.0)  # 1,000 x 128 images at 1,280 img/s
    table = gpu_check.markdown([row], 1000e12, "X")
    assert (
        "| p | 128 | 1,000 | 1,280 | 50 | 1000.0 | 10 | 1.0% | 700 | 2.00 | 100 s | 500,000 steps: 13.9 h |"
        in table
    )


def test_refuses_a_cpu_without_allow_cpu(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    assert "--allow-cpu" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        gpu_check.main(["--help"])
    assert info.value.code == 0
    assert "--inception-weights" in capsys.readouterr().out


def test_runs_end_to_end_tiny_on_the_cpu(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["--allow-cpu", "--data", "random", "--train-seconds", "1.5", "--out", str(tmp_path / "run")]
    assert gpu_check.main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| preset |"))
    assert lines[head + 1].startswith("|---|")
    row = lines[head + 2].split("|")
    assert (
        row[1].strip() == "tiny-cpu" and row[2].strip() == "4" and row[8].strip() == "unknown"
    )  # no CPU peak
    assert float(row[3].replace(",", "")) > 0 and float(row[4].replace(",", "")) > 0  # eager, compiled img/s
    assert "2,000 steps:" in row[12]
    assert "Training (tiny-cpu, batch 4, the real Trainer" in out and "random images" in out
    assert "FID: skipped: on the CPU" in out
    assert "elapsed: benchmark" in out
    assert "torch.compile (eager)" in out  # the compiled variant ran, with the tracing backend


def test_a_failed_benchmark_is_reported_and_the_rest_goes_on(capsys, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("compiler exploded")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "bench_preset", broken)
    assert (
        gpu_check.main(["--allow-cpu", "--data", "random", "--train-seconds", "1", "--out", str(tmp_path)])
        == 1
    )
    out = capsys.readouterr().out
    assert "FAILED: tiny-cpu: benchmark failed (RuntimeError: compiler exploded)" in out
    assert "| preset |" in out and "Training (tiny-cpu" in out  # the table's head and the training still come
