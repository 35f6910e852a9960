"""Run-loop guards for every algorithm (one more algorithm is one more parameter): a NaN inside the jitted
update stops the run at the end of its chunk with a message naming the update and what went non-finite,
the last good checkpoint stays, and resuming from it ends bit-identical to an uninterrupted run; a failing
checkpoint write (a full disk) keeps the previous checkpoint loadable and resumable (docs/reliability.md)."""
from __future__ import annotations

import errno
import json

import jax
import numpy as np
import pytest

from conftest import tiny
from subproc import raw_checkpoint, rows
from trustmarl import cli
from trustmarl.algos import ALGORITHMS
from trustmarl.runtime import checkpoints as ckpt
from trustmarl.runtime.errors import CheckpointWriteError, NonFiniteError
from trustmarl.runtime.loop import make_driver, train

ALGOS = sorted(a for a, x in ALGORITHMS.items() if x.family == "on_policy")  # _config sets on-policy keys
_DRIVERS: dict = {}  # one compiled driver per algorithm, shared by the steps of its test


def _config(algo):
    return tiny(algo=algo, env="fast_envs:make_fast", num_seeds=2, total_env_steps=4 * 8 * 4, checkpoint_every=2,
                hidden=(8,), update_epochs=1, num_minibatches=1)


class PoisonAt:
    """A driver whose ``at``-th chunk starts from NaN policy parameters (the NaN arises inside the jitted
    update from there: losses, gradients, parameters)."""

    def __init__(self, driver, at: int):
        self.driver, self.at, self.calls = driver, at, 0
        self.trainer, self.num_seeds = driver.trainer, driver.num_seeds

    def init(self):
        return self.driver.init()

    def compile(self, state, n):
        return self.driver.compile(state, n)

    def run(self, state, n):
        self.calls += 1
        if self.calls == self.at:
            ids = {id(x) for x in jax.tree.leaves(self.trainer.policy_params(state))}
            state = jax.tree.map(lambda x: x * np.nan if id(x) in ids else x, state)
        return self.driver.run(state, n)

    def close(self):
        pass


def _same_run(a, b):
    for f in ("metrics.csv", "trust_region.csv"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    x, y = raw_checkpoint(a), raw_checkpoint(b)
    assert x["step"] == y["step"]
    for u, v in zip(x["leaves"], y["leaves"], strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("algo", ALGOS)
def test_nonfinite_stop_and_failed_checkpoint_keep_the_last_good_one(algo, tmp_path, monkeypatch):
    cfg = _config(algo)
    driver = _DRIVERS.setdefault(algo, make_driver(cfg))
    ref = tmp_path / "ref"
    train(cfg, ref, driver=driver, plot=False)

    # 1. NaN from update 3 on: stop at the end of that chunk, nothing saved over checkpoint 2, then resume
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteError) as err:
        train(cfg, run, driver=PoisonAt(driver, 3), plot=False)
    e = err.value
    assert e.update == 3 and e.checkpoint == 2 and "parameters" in e.kinds and "losses" in e.kinds, str(e)
    msg = str(e)
    assert msg.startswith("non-finite values (NaN/inf) in losses, gradients and parameters at update 3 (seed 0, 1)")
    assert "last good checkpoint (update 2," in msg and "trustmarl resume" in msg and "\n" not in msg
    assert ckpt.latest_checkpoint(run) == 2 and not (run / "summary.json").exists()
    logged = rows(run / "metrics.csv")
    assert [int(r["update"]) for r in logged] == [1, 1, 2, 2, 3, 3]
    assert [int(float(r["nonfinite"])) for r in logged][-2:] == [14, 14] and logged[0]["nonfinite"] == "0"
    train(cfg, run, resume=True, driver=driver, plot=False)
    _same_run(run, ref)

    # 2. a full disk while checkpoint 4 is written: an error naming it, checkpoint 2 intact, resume works
    from orbax.checkpoint._src.path import atomicity
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def disk_full(self):
        if self.get_final().name == "4":
            raise OSError(errno.ENOSPC, "No space left on device")
        return await finalize(self)

    run = tmp_path / "full"
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", disk_full)
    with pytest.raises(CheckpointWriteError) as err:
        train(cfg, run, driver=driver, plot=False)
    msg = str(err.value)
    assert "could not write the checkpoint of update 4" in msg and "No space left on device" in msg, msg
    assert "the previous checkpoint (update 2) is intact" in msg and err.value.exit_code == 5
    assert ckpt.latest_checkpoint(run) == 2
    assert [p.name for p in (run / "checkpoints").iterdir() if "tmp" in p.name] == []
    ckpt.restore_checkpoint(run, driver.init())  # loadable
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)
    train(cfg, run, resume=True, driver=driver, plot=False)
    _same_run(run, ref)


def test_nan_from_the_env_stops_the_cli_with_exit_code_4_and_resume_continues(tmp_path, capfd):
    """A test env emits a NaN reward at env step 20 (update 3 of 8-step rollouts): `trustmarl train` stops
    with one line and exit code 4; `trustmarl resume RUN key=value` (the env fixed) finishes the run."""
    args = ["env=fast_envs:make_fast", 'env_options={"nan_at": 20}', "algo=ippo", "num_envs=4", "rollout_length=8",
            "hidden=8", "update_epochs=1", "num_minibatches=1", "total_env_steps=160", "progress=false",
            "log_every=1", "checkpoint_every=1", f"out_dir={tmp_path}", "run_name=r"]
    assert cli.main(["train", *args]) == 4
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(
        "trustmarl: error: non-finite values (NaN/inf) in env outputs (observations, rewards), losses"), err
    assert "at update 3; the run stopped at the end of that chunk and saved nothing of it" in err[0]
    run = tmp_path / "r"
    assert ckpt.latest_checkpoint(run) == 2
    assert cli.main(["resume", str(run), 'env_options={"nan_at": 100000}']) == 0
    assert "done: 160 env steps" in capfd.readouterr().out
    assert [int(r["update"]) for r in rows(run / "metrics.csv")] == [1, 2, 3, 4, 5]
    assert json.loads((run / "config.json").read_text())["env_options"] == '{"nan_at": 100000}'
