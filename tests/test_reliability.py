"""Kill `python -m vitgan_lite train` with SIGKILL at random points, resume, and check nothing is lost.

Checkpoints are written atomically (temp file, fsync, os.replace), so after any kill the newest checkpoint
is complete, at most ``ckpt_every`` steps behind the last logged step, and ``--resume`` reaches the final
step with every step logged once. (That a resume reproduces an uninterrupted run exactly is tested in
process, in tests/test_train.py.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from vitgan_lite.run.checkpoints import latest_checkpoint, list_checkpoints, load_checkpoint

STEPS, CKPT_EVERY = 40, 2
OVERRIDES = dict(
    image_size=16, latent_dim=16, style_dim=16, mapping_layers=1, g_dim=16, g_depth=1, g_fourier_dim=16,
    g_decoder_dim=16, d_dim=16, d_depth=1, batch_size=4, log_every=1, sample_every=1000,
    ckpt_every=CKPT_EVERY, keep_ckpts=2, fid_num_samples=0, cfd_every=0, steps=STEPS,
)  # fmt: skip

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


def logged_steps(run) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill; resume drops it
            continue
        if "d_loss" in rec:
            steps.append(rec["step"])
    return steps


def launch(run, data, *extra, **overrides):
    """``python -m vitgan_lite train`` into ``run``; ``--resume`` when it holds a checkpoint, else a new run
    (``--overwrite`` over a run killed before its first checkpoint)."""
    argv = [sys.executable, "-m", "vitgan_lite", "train", "--preset", "tiny-cpu", "--out", str(run)]
    argv += ["--data", str(data), "--device", "cpu", *extra]
    if not extra:
        argv += ["--resume"] if list_checkpoints(run) else ["--overwrite"] if run.exists() else []
    for k, v in {**OVERRIDES, **overrides}.items():
        argv += ["--set", f"{k}={v}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def image_folder(tmp_path):
    data = tmp_path / "images"
    data.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(8):
        Image.fromarray(torch.randint(0, 256, (16, 16, 3), generator=g, dtype=torch.uint8).numpy()).save(
            data / f"{i}.png"
        )
    return data


def wait_for_step(proc, run, step, timeout=90):
    deadline = time.monotonic() + timeout
    while max(logged_steps(run), default=0) < step:
        assert proc.poll() is None, f"training ended early: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.01)


def test_sigkill_then_resume(tmp_path):
    data = image_folder(tmp_path)
    run = tmp_path / "run"
    rng = random.Random(1234)
    for kill in range(3):
        proc = launch(run, data)
        start = max(logged_steps(run), default=0)
        target = rng.randint(start + 1, start + 10)  # kill somewhere in the next 10 steps...
        deadline = time.monotonic() + 60
        while max(logged_steps(run), default=0) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))  # ...at a random moment inside a step, a log or a checkpoint write
        assert proc.poll() is None, f"run {kill} finished before it could be killed: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        newest = latest_checkpoint(run)
        if newest is not None:
            ckpt_step = load_checkpoint(newest)["step"]  # complete and loadable, never half-written
            assert max(logged_steps(run)) - ckpt_step <= CKPT_EVERY, (
                "lost more than the steps since the last checkpoint"
            )
    proc = launch(run, data)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert logged_steps(run) == list(range(1, STEPS + 1)), (
        "after the resumes every step is logged exactly once"
    )
    final = load_checkpoint(latest_checkpoint(run))
    assert final["step"] == STEPS
    assert len(list_checkpoints(run)) == 2 and not list(run.glob(".ckpt_*")), "old and temp files cleaned up"


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_finishes_the_step_writes_a_checkpoint_and_says_how_to_resume(tmp_path, sig, code):
    data, run = image_folder(tmp_path), tmp_path / "run"
    proc = launch(run, data, steps=100_000, ckpt_every=100_000)  # no checkpoint before the signal
    wait_for_step(proc, run, 3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == code, err
    step = load_checkpoint(latest_checkpoint(run))["step"]
    assert step >= max(logged_steps(run)) >= 3, "the checkpoint holds every logged step"
    assert f"stopped after step {step}" in err and "--resume" in err and "Traceback" not in err
    assert not list(run.glob(".ckpt_*")) and not (run / "run.lock").exists()
    proc = launch(run, data, steps=step + 2)  # and the run goes on from there
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert logged_steps(run) == list(range(1, step + 3))


def test_a_second_ctrl_c_aborts_at_once(tmp_path):
    from vitgan_lite.run.trainer import StopRequest

    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested == signal.SIGINT  # the first asks politely
        with pytest.raises(KeyboardInterrupt, match="second SIGINT: aborted"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_two_trainers_on_one_run_folder(tmp_path):
    data, run = image_folder(tmp_path), tmp_path / "run"
    first = launch(run, data, steps=100_000, ckpt_every=100_000)
    wait_for_step(first, run, 1)
    second = launch(run, data, "--resume")
    _, err = second.communicate(timeout=60)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    assert second.returncode == 2 and "is in use by process" in err.decode(), err.decode()
    assert logged_steps(run) == sorted(set(logged_steps(run))), "one trainer wrote the log"


def test_a_stale_lock_is_taken_over_and_a_live_one_refused(tmp_path):
    import json
    import socket

    from vitgan_lite.run.runfolder import RunFolderError, RunLock

    (tmp_path / "run.lock").write_text(json.dumps({"pid": 2**22 + 7, "host": socket.gethostname()}))
    with RunLock(tmp_path):  # that process is gone
        assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run.lock").exists()
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 1, "host": socket.gethostname()}))
    with pytest.raises(RunFolderError, match="in use by process 1 on"):
        RunLock(tmp_path).acquire()
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        RunLock(file).acquire()
