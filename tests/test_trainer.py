"""Tests of the run layer's trainer (vitgan_lite/run/trainer.py): run folder, resume, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny_config, write_image_folder
from PIL import Image
from torch import nn

import vitgan_lite.run.trainer as trainer_mod
import vitgan_lite.train as train_mod
from vitgan_lite.config import Config, ConfigError
from vitgan_lite.metrics import MetricsUnavailable
from vitgan_lite.run.checkpoints import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from vitgan_lite.run.trainer import Autocast, Trainer, TrainingDiverged, rng_stream

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Twelve random 16 x 16 PNGs in a flat folder (the data module's local-folder path)."""
    return write_image_folder(tmp_path_factory.mktemp("images"), 12)


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def loss_lines(run):
    return {r["step"]: (r["d_loss"], r["g_loss"], r["bcr"]) for r in read_metrics(run) if "d_loss" in r}


def test_trainer_writes_the_run_folder(tmp_path, image_folder, monkeypatch):
    def no_weights(*args, **kwargs):
        raise MetricsUnavailable("no Inception weights on this machine")

    monkeypatch.setattr(trainer_mod, "compute_fid_is", no_weights)
    seen = []
    cfg = tiny_config(fid_num_samples=10)
    callbacks = [lambda step, metrics: seen.append(step)]
    trainer = Trainer(cfg, tmp_path / "run", device="cpu", data=image_folder, callbacks=callbacks)
    last = trainer.train()
    run = tmp_path / "run"
    records = read_metrics(run)
    steps = [r["step"] for r in records if "d_loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6] and last["step"] == 6
    for key in ("d_loss", "g_loss", "bcr", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "images_per_s"):
        assert all(isinstance(r[key], float) for r in records if "d_loss" in r), key
    assert records[0]["sigma_min"] > 0
    assert records[-1] == {"step": 6, "fid_skipped": "no Inception weights on this machine"}
    assert seen == [1, 2, 3, 4, 5, 6, 6]  # log intervals, then the FID result
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        "step_000002.png",
        "step_000004.png",
        "step_000006.png",
    ]
    assert Image.open(run / "samples" / "step_000006.png").size == (8 * 18 + 2, 8 * 18 + 2)  # 8 x 8 grid
    assert [p.name for p in list_checkpoints(run)] == ["ckpt_0000004.pt", "ckpt_0000006.pt"]  # keep_ckpts 2
    state = load_checkpoint(run / "ckpt_0000006.pt")
    assert state["step"] == 6 and state["config"]["g_dim"] == 16
    assert set(state["rng"]) >= {"torch", "sampler", "z"}
    # the EMA generator tracks G: it moved away from its initial copy
    assert not all(torch.equal(a, b) for a, b in zip(trainer.G_ema.parameters(), trainer.G.parameters()))


def test_resume_reproduces_the_uninterrupted_run(tmp_path, image_folder):
    cfg = tiny_config(ckpt_every=3)
    Trainer(cfg, tmp_path / "a", device="cpu", data=image_folder).train(6)
    Trainer(cfg, tmp_path / "b", device="cpu", data=image_folder).train(4)  # checkpoints at 3 and 4
    (tmp_path / "b" / "ckpt_0000004.pt").unlink()  # "killed" after step 4's log line, before its checkpoint
    resumed = Trainer(cfg, tmp_path / "b", device="cpu", data=image_folder).resume(tmp_path / "b")
    assert resumed.step == 3
    resumed.train(6)
    a, b = loss_lines(tmp_path / "a"), loss_lines(tmp_path / "b")
    assert sorted(b) == [1, 2, 3, 4, 5, 6], "the log shows each step once after a resume"
    assert a == b, "a resumed run must reproduce the uninterrupted run's losses exactly on the CPU"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, image_folder, monkeypatch):
    calls = {"n": 0}
    real_loss = train_mod.g_nonsaturating_loss

    def nan_from_step_3(logits):
        calls["n"] += 1
        loss = real_loss(logits)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(train_mod, "g_nonsaturating_loss", nan_from_step_3)
    cfg = tiny_config(log_every=10, ckpt_every=2)  # the NaN at step 3 is found at step 4's checkpoint
    with pytest.raises(TrainingDiverged, match=r"step 3 \(g_loss"):
        Trainer(cfg, tmp_path / "run", device="cpu", data=image_folder).train(6)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["ckpt_0000002.pt"]
    state = load_checkpoint(tmp_path / "run" / "ckpt_0000002.pt")
    assert all(torch.isfinite(v).all() for v in state["G"].values())


def test_resume_refuses_another_architecture(tmp_path, image_folder):
    Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder).train(2)
    other = Trainer(tiny_config(g_dim=32, d_depth=2), tmp_path / "other", device="cpu", data=image_folder)
    with pytest.raises(CheckpointError, match=r"another architecture.*g_dim: 16 vs 32.*d_depth: 1 vs 2"):
        other.resume(tmp_path / "run")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        other.resume(tmp_path / "other")


def test_corrupt_or_truncated_checkpoint(tmp_path, image_folder):
    trainer = Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder)
    trainer.train(2)
    good = (tmp_path / "run" / "ckpt_0000002.pt").read_bytes()
    bad = tmp_path / "run" / "ckpt_0000009.pt"
    for content in (good[: len(good) // 2], b"not a checkpoint at all", b""):
        bad.write_bytes(content)
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            trainer.resume(tmp_path / "run")  # the newest file is the bad one
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere.pt")
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="not a vitgan-lite checkpoint"):
        load_checkpoint(bad)


def test_bad_config_is_refused_before_any_work(tmp_path):
    bad = tiny_config().replace(g_dim=15)  # replace() does not validate; the trainer must
    with pytest.raises(ConfigError, match="g_dim 15 is not divisible by g_num_heads"):
        Trainer(bad, tmp_path / "run", device="cpu", data=tmp_path / "no-such-folder")
    assert not (tmp_path / "run").exists()


def test_data_of_the_wrong_size_is_refused(tmp_path):
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="image_size"):
        Trainer(tiny_config(), tmp_path / "run", device="cpu", data=images)


def test_interval_zero_means_only_at_the_end(tmp_path, image_folder):
    cfg = tiny_config(log_every=0, sample_every=0, ckpt_every=0)
    Trainer(cfg, tmp_path / "run", device="cpu", data=image_folder).train(3)
    run = tmp_path / "run"
    assert [r["step"] for r in read_metrics(run) if "d_loss" in r] == [3]
    assert [p.name for p in (run / "samples").glob("*.png")] == ["step_000003.png"]
    assert [p.name for p in list_checkpoints(run)] == ["ckpt_0000003.pt"]
    with pytest.raises(ConfigError, match="log_every must be 0"):
        tiny_config(log_every=-1)


def test_a_checkpoint_with_old_field_names_resumes(tmp_path, image_folder):
    # Checkpoints written before the renames (bcr_real -> lambda_real, d_norm -> d_spectral_norm) still load.
    trainer = Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder)
    trainer.train(2)
    state = load_checkpoint(tmp_path / "run" / "ckpt_0000002.pt")
    old = dict(state["config"])
    old["bcr_real"], old["bcr_fake"], old["d_norm"] = (
        old.pop("lambda_real"),
        old.pop("lambda_fake"),
        old.pop("d_spectral_norm"),
    )
    save_checkpoint({**state, "config": old}, tmp_path / "run" / "ckpt_0000002.pt")
    resumed = Trainer.from_checkpoint(tmp_path / "run" / "ckpt_0000002.pt", device="cpu", data=image_folder)
    assert resumed.step == 2 and resumed.cfg.d_spectral_norm == "isn"
    assert Config.from_dict(old) == Config.from_dict(state["config"])


def test_autocast_wrapper_hands_back_float32():
    lin = nn.Linear(4, 3)
    out = Autocast(lin, "cpu", torch.bfloat16)(torch.randn(2, 4))
    assert out.dtype == torch.float32 and list(Autocast(lin, "cpu", torch.bfloat16).parameters()) == list(
        lin.parameters()
    )


def test_random_streams_are_distinct_and_seeded():
    draws = {name: torch.randn(3, generator=rng_stream(0, name)) for name in trainer_mod.RNG_STREAMS}
    assert len({tuple(v.tolist()) for v in draws.values()}) == len(draws)
    assert torch.equal(draws["z"], torch.randn(3, generator=torch.Generator().manual_seed(2)))


# ---- faults that must not lose or corrupt a run (issue 15) -------------------------------------------


def test_a_full_disk_keeps_the_newest_good_checkpoint(tmp_path, image_folder, monkeypatch):
    import errno

    import vitgan_lite.run.checkpoints as ckpt_mod

    trainer = Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder)
    trainer.train(2)

    def disk_full(state, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", disk_full)
    with pytest.raises(
        CheckpointError, match=r"the disk is full; the newest complete checkpoint is still .*ckpt_0000002\.pt"
    ):
        trainer.train(4)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["ckpt_0000002.pt"]
    assert not list((tmp_path / "run").glob(".ckpt_*")), "no temporary file left behind"
    assert load_checkpoint(tmp_path / "run" / "ckpt_0000002.pt")["step"] == 2
    assert not (tmp_path / "run" / "run.lock").exists(), "the lock is released on the way out"


def test_nan_weights_are_never_checkpointed(tmp_path, image_folder):
    trainer = Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder)
    with torch.no_grad():
        next(trainer.G.parameters()).fill_(float("nan"))  # as lr_g=inf does after a step or two
    with pytest.raises(TrainingDiverged, match=r"weights of G(?: and G_ema)? hold NaN or inf"):
        trainer.save()
    assert list_checkpoints(tmp_path / "run") == []


def test_fuzzed_checkpoint_bytes_always_give_the_checkpoint_error(tmp_path, image_folder):
    import random

    Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder).train(2)
    good = (tmp_path / "run" / "ckpt_0000002.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    rng = random.Random(0)
    outcomes = {"refused": 0, "loaded": 0}
    for seed in range(300):
        kind = seed % 3
        if kind == 0:  # random bytes, sometimes with a zip or pickle header
            head = rng.choice([b"", b"PK\x03\x04", b"\x80\x02"])
            data = head + rng.randbytes(rng.randint(0, 2000))
        elif kind == 1:  # cut anywhere
            data = good[: rng.randint(0, len(good) - 1)]
        else:  # a few bytes changed anywhere
            data = bytearray(good)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        bad.write_bytes(data)
        try:
            load_checkpoint(bad)
            outcomes["loaded"] += 1  # a flip inside tensor data still loads: only its numbers changed
        except CheckpointError as e:
            assert str(bad) in str(e)
            outcomes["refused"] += 1
    assert outcomes["refused"] >= 200, outcomes


def test_a_checkpoint_whose_tensors_do_not_fit_is_a_checkpoint_error(tmp_path, image_folder):
    from vitgan_lite.run.checkpoints import generator_from_checkpoint

    Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder).train(2)
    state = load_checkpoint(tmp_path / "run" / "ckpt_0000002.pt")
    name = next(iter(state["G_ema"]))
    state["G_ema"][name] = torch.zeros(3, 3, 3)
    state["G"][name] = torch.zeros(3, 3, 3)
    edited = save_checkpoint(state, tmp_path / "edited" / "ckpt_0000002.pt")
    with pytest.raises(CheckpointError, match=r"does not fit this version's generator.*size mismatch"):
        generator_from_checkpoint(edited)
    trainer = Trainer(tiny_config(), tmp_path / "other", device="cpu", data=image_folder)
    with pytest.raises(CheckpointError, match=f"checkpoint {edited} does not fit"):
        trainer.resume(edited)


def test_a_malicious_pickle_is_refused_as_such(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "ckpt_0000001.pt"
    torch.save({"G": Evil()}, path)
    with pytest.raises(CheckpointError, match="was refused: it holds Python objects"):
        load_checkpoint(path)


def test_the_log_also_goes_to_tensorboard_when_it_is_installed(tmp_path, image_folder, monkeypatch):
    written = []

    class FakeWriter:  # torch.utils.tensorboard's interface, without the tensorboard package
        def __init__(self, folder):
            self.folder = folder

        def add_scalar(self, tag, value, step):
            written.append((tag, step))

        def flush(self):
            pass

        def close(self):
            written.append(("closed", None))

    monkeypatch.setattr(trainer_mod, "_summary_writer", FakeWriter)
    Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder).train(2)
    assert ("d_loss", 1) in written and ("g_loss", 2) in written and ("images_per_s", 2) in written
    assert written[-1] == ("closed", None)
    monkeypatch.setattr(trainer_mod, "_summary_writer", lambda folder: None)  # not installed: the log only
    Trainer(tiny_config(), tmp_path / "plain", device="cpu", data=image_folder).train(1)
    assert (tmp_path / "plain" / "metrics.jsonl").is_file()


@pytest.mark.parametrize(
    "device,amp,bf16_hardware,expected",
    [
        ("cpu", "auto", True, None),  # float32 on the CPU
        ("cuda", "auto", True, torch.bfloat16),  # an A100 / H100
        ("cuda", "auto", False, None),  # a T4: emulated bf16 would be slower than float32
        ("cuda", "bf16", False, torch.bfloat16),  # asked for explicitly
        ("cuda", "none", True, None),
    ],
)
def test_mixed_precision_policy(monkeypatch, device, amp, bf16_hardware, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16_hardware)
    assert trainer_mod.amp_dtype(tiny_config(amp=amp), torch.device(device)) == expected


def test_compile_auto_pays_only_where_it_can():
    from vitgan_lite.run.trainer import COMPILE_MIN_STEPS, compile_decision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    long_run = tiny_config(steps=100_000)
    assert compile_decision(long_run, cpu)[0] is (COMPILE_MIN_STEPS["cpu"] is not None)
    assert compile_decision(long_run, cuda) == (True, "compile=auto: on for 100000 steps on cuda")
    on, why = compile_decision(tiny_config(steps=10), cuda)
    assert not on and "it pays from 2000 steps" in why
    assert compile_decision(tiny_config(compile="on"), cpu) == (True, "compile=on")
    assert compile_decision(tiny_config(compile="off"), cuda) == (False, "compile=off")
    # the old bool field and the command line's true/false still mean on/off
    assert Config(compile=True).compile == "on" and Config(compile="false").compile == "off"
    with pytest.raises(ConfigError, match="compile must be one of"):
        tiny_config(compile="sometimes")


def test_compiling_points_inductor_at_a_persistent_cache(monkeypatch, tmp_path):
    from vitgan_lite.run.trainer import use_persistent_compile_cache

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("VITGAN_LITE_CACHE", str(tmp_path))
    assert use_persistent_compile_cache() == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    assert use_persistent_compile_cache() == "/elsewhere", "a user's own setting wins"
