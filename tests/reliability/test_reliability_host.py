"""Host path: a worker that crashes, hangs, raises or returns malformed data gives one clear error within the
timeout and leaves no process behind; Ctrl-C stops a run cleanly after a checkpoint (docs/reliability.md)."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import psutil
import pytest

import broken_pz_envs as P
from subproc import cli_env, popen, rows
from trustmarl.envs.host_vector import HostEnvError, HostVectorEnv
from trustmarl.runtime import checkpoints as ckpt


def _children(pid=None) -> list:
    """Live child processes (recursive), without multiprocessing's resource tracker (one per parent, for life)."""
    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


FAILURES = [
    (P.CrashPZ, "(exit code 3)"),
    (P.HangPZ, "a worker did not answer within 3 s during step (a hung env?)"),
    (P.RaisePZ, "a worker's env raised during step: RuntimeError: the physics engine exploded"),
    (P.WrongObsPZ, "a worker's env returned malformed data during step: MalformedEnvData: observation of agent 'p0' "
                   "has 7 values; its observation_space declares 5"),
    (P.TextRewardPZ, "returned malformed data during step: MalformedEnvData: a reward is not a number"),
]


@pytest.mark.parametrize("cls,words", FAILURES, ids=[c.__name__ for c, _ in FAILURES])
def test_failing_worker_gives_one_error_within_the_timeout_and_no_process_is_left(cls, words):
    before = {p.pid for p in _children()}
    venv = HostVectorEnv(cls, 2, timeout=3.0)
    pids = venv.worker_pids()
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    ts = venv.reset()
    rng = np.random.default_rng(0)
    t0 = time.time()
    with pytest.raises(HostEnvError) as err:
        for _ in range(10):
            ts = venv.step(venv.random_actions(rng, ts.avail))
    elapsed = time.time() - t0
    msg = str(err.value)
    assert msg.startswith("host env 'cue_pz': ") and words in msg and msg.endswith("all 2 worker(s) were stopped"), msg
    assert "\n" not in msg and err.value.exit_code == 6
    assert elapsed < 3.0 + 8.0, elapsed  # the timeout, plus stopping the workers
    venv.close()  # idempotent after a failure
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert {p.pid for p in _children()} <= before
    with pytest.raises(HostEnvError, match="after the workers were stopped"):
        venv.step(venv.random_actions(rng, ts.avail))


def test_workers_of_a_healthy_env_are_gone_after_close():
    before = {p.pid for p in _children()}
    with HostVectorEnv(P.make_cue(), 3, timeout=10.0) as venv:
        pids = venv.worker_pids()
        ts = venv.reset()
        for _ in range(7):
            ts = venv.step(venv.random_actions(np.random.default_rng(1), ts.avail))
        assert ts.obs.shape == (3, 2, P.OBS)
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert {p.pid for p in _children()} <= before


HOST_RUN = ["algo=mappo", "env=broken_pz_envs:make_cue", "num_envs=2", "rollout_length=8", "hidden=8",
            "update_epochs=1", "num_minibatches=1", "total_env_steps=16000", "log_every=1", "checkpoint_every=1000",
            "progress=false"]
JAX_RUN = ["algo=ippo", "env=fast_envs:make_fast", "num_envs=4", "rollout_length=8", "hidden=8", "update_epochs=1",
           "num_minibatches=1", "total_env_steps=3200000", "log_every=1", "checkpoint_every=1000", "progress=false"]


def _wait_rows(path, n, proc, timeout=240):
    t = time.time()
    while time.time() - t < timeout and proc.poll() is None:
        try:
            if len(path.read_text().splitlines()) > n:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no {n} rows in {path}: {proc.poll()} {proc.stderr.read()[-2000:] if proc.poll() else ''}")


def test_ctrl_c_stops_cleanly_after_a_checkpoint_and_a_crashing_worker_exits_6(tmp_path):
    """SIGINT to the whole process group (a terminal's Ctrl-C, workers included) during a host-path and a JAX
    run: exit code 130, one line naming the update, a checkpoint of exactly the logged updates, no process
    left; a host run whose worker dies: exit code 6 with one line, no process left."""
    env = cli_env()
    procs = {
        "host": popen(["train", *HOST_RUN, f"out_dir={tmp_path}", "run_name=host"], env, start_new_session=True),
        "jax": popen(["train", *JAX_RUN, f"out_dir={tmp_path}", "run_name=jax"], env, start_new_session=True),
        "crash": popen(["train", *HOST_RUN, "env=broken_pz_envs:make_crash", 'env_options={"at": 12}',
                        f"out_dir={tmp_path}", "run_name=crash"], env, start_new_session=True),
    }
    workers = {}
    for name in ("host", "jax"):
        _wait_rows(tmp_path / name / "metrics.csv", 3, procs[name])
        workers[name] = [c.pid for c in _children(procs[name].pid)]
        os.killpg(procs[name].pid, signal.SIGINT)
    assert len(workers["host"]) == 2 and workers["jax"] == []
    for name in ("host", "jax"):
        out, err = procs[name].communicate(timeout=120)
        assert procs[name].returncode == 130, (name, err[-3000:])
        lines = [ln for ln in err.splitlines() if ln.startswith("trustmarl")]
        assert lines[0] == "trustmarl: SIGINT: stopping after this chunk with a checkpoint (again to abort at once)", \
            (name, err[-3000:])
        assert lines[-1].startswith("trustmarl: interrupted (SIGINT) after update "), err
        update = int(lines[-1].split("after update ")[1].split()[0])
        assert f"checkpoint of update {update} in " in lines[-1] and "trustmarl resume" in lines[-1]
        run = tmp_path / name
        assert ckpt.latest_checkpoint(run) == update
        assert max(int(r["update"]) for r in rows(run / "metrics.csv")) == update
        assert not [p for p in workers[name] if psutil.pid_exists(p) and
                    psutil.Process(p).status() != psutil.STATUS_ZOMBIE], name
        assert _group_left(procs[name].pid) == [], name
    out, err = procs["crash"].communicate(timeout=240)
    assert procs["crash"].returncode == 6, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [lines[-1]] and lines[-1].startswith("trustmarl: error: host env 'cue_pz': worker process"), err
    assert "died during step" in lines[-1]
    assert _group_left(procs["crash"].pid) == [], "a process of the crashed run is still alive"


def _group_left(pgid, wait=10.0) -> list:
    """Processes still alive in process group ``pgid`` after ``wait`` seconds (multiprocessing's resource
    tracker leaves on its own once its parent is gone)."""
    t = time.time()
    while True:
        left = []
        for p in psutil.process_iter(["pid", "cmdline", "status"]):
            try:
                if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    left.append(" ".join(p.info["cmdline"] or [])[:200])
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        if not left or time.time() - t > wait:
            return left
        time.sleep(0.2)


class _StderrInsideItsOwnWrite:
    """A stderr whose buffered layer is busy (the main thread was inside its write when the signal came): its
    write and flush raise what CPython's BufferedWriter raises then; its file descriptor works."""

    def __init__(self, fd):
        self._fd = fd

    def fileno(self):
        return self._fd

    def write(self, text):
        raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")

    def flush(self):
        self.write("")


def test_the_stop_message_reaches_stderr_when_the_signal_lands_inside_a_stderr_write(monkeypatch):
    import sys

    from trustmarl.runtime.loop import _StopOnSignal
    r, w = os.pipe()
    try:
        monkeypatch.setattr(sys, "stderr", _StderrInsideItsOwnWrite(w))
        stop = _StopOnSignal()
        stop._handle(signal.SIGTERM, None)  # must neither raise nor lose the line
        assert stop.signum == signal.SIGTERM
        os.close(w)
        w = None
        assert os.read(r, 4096).decode() == ("trustmarl: SIGTERM: stopping after this chunk with a checkpoint "
                                             "(again to abort at once)\n")
        with pytest.raises(KeyboardInterrupt):  # a second signal aborts at once
            stop._handle(signal.SIGINT, None)
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
