"""`trustmarl sweep`: the word grammar, trial names, the metrics.csv reader that feeds Tune, and end to end on a
local Ray head (two trials at a tiny budget; a driver killed mid-sweep and resumed).

The end-to-end tests need Ray Tune (the ``sweep`` extra, part of ``test``): without it they skip, saying so.
With Ray installed, a head that cannot start is a failure whose message is Ray's reason, not a skip.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from trustmarl import sweep as sw

HAVE_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.tune") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray Tune is not installed: the sweep extra is optional "
                               "(pip install -e '.[sweep]'; the test extra includes it)")

# A tiny IPPO job on 2-agent MPE (as tests/conftest.py's TINY, with 25-step rollouts so that every update
# ends an episode and logs a finite return).
TINY_WORDS = ["algo=ippo", "env=mpe_spread", "num_agents=2", "num_envs=4", "rollout_length=25", "update_epochs=2",
              "num_minibatches=2", "hidden=16,16", "log_every=1", "num_seeds=2"]


# --------------------------------------------------------------------------------------------
# grammar
# --------------------------------------------------------------------------------------------


def test_grammar_kinds():
    axes = sw.parse_spec(["algo=ippo,mappo", "lr=grid:1e-3,3e-4", "ent_coef=uniform:0,0.02",
                          "critic_lr=loguniform:1e-4,1e-2", "update_epochs=randint:2,6", "clip_kind=choice:symmetric,multiplicative",
                          "num_seeds=2", "env=mpe_spread"])
    assert axes["algo"] == sw.Axis("algo", "grid", ("ippo", "mappo"))
    assert axes["lr"] == sw.Axis("lr", "grid", (1e-3, 3e-4))
    assert axes["ent_coef"] == sw.Axis("ent_coef", "uniform", (0.0, 0.02))
    assert axes["critic_lr"] == sw.Axis("critic_lr", "loguniform", (1e-4, 1e-2))
    assert axes["update_epochs"] == sw.Axis("update_epochs", "randint", (2, 6))
    assert axes["clip_kind"] == sw.Axis("clip_kind", "choice", ("symmetric", "multiplicative"))
    assert axes["num_seeds"] == sw.Axis("num_seeds", "fixed", (2,))   # typed by the config field
    assert axes["env"] == sw.Axis("env", "fixed", ("mpe_spread",))
    assert [a.key for a in axes.values() if a.varies] == ["algo", "lr", "ent_coef", "critic_lr", "update_epochs",
                                                           "clip_kind"]


def test_grammar_values_holding_commas():
    axes = sw.parse_spec(["hidden=64,64/128,128", "env_options={\"a\": 1, \"b\": 2}"])
    assert axes["hidden"] == sw.Axis("hidden", "grid", ((64, 64), (128, 128)))
    assert sw.parse_spec(["hidden=64,64"])["hidden"] == sw.Axis("hidden", "fixed", ((64, 64),))
    assert axes["env_options"].kind == "fixed"
    # env=package.module:factory is a value, not a kind
    assert sw.parse_spec(["env=mpe_spread"])["env"].kind == "fixed"


@pytest.mark.parametrize("word, message", [
    ("lr", "is not key=value"),
    ("lrr=1e-3", "unknown config key 'lrr' (did you mean lr?)"),
    ("clip_kind=symmetric,wide", "clip_kind='wide' is not one of symmetric, multiplicative"),
    ("lr=uniform:1e-3", "needs two bounds"),
    ("lr=uniform:3e-3,1e-3", "the low bound must be below the high bound"),
    ("lr=loguniform:0,1e-3", "loguniform needs a positive low bound"),
    ("lr=loguniform:-1e-3,1e-3", "loguniform needs a positive low bound"),
    ("lr=randint:1,3", "not an integer key"),
    ("algo=uniform:1,2", "not a numeric key"),
    ("num_envs=uniform:2,8", "integer key; use randint"),
    ("lr=uniform:a,b", "bound 'a' is not a number"),
    ("num_envs=4,x", "num_envs='x' is not an integer"),
    ("out_dir=x", "out_dir is set by the sweep"),
    ("run_name=x", "run_name is set by the sweep"),
    ("lr=1e-3,", "has an empty value"),
    ("num_envs=randint:0,4", "num_envs=0 must be >= 1"),
])
def test_grammar_errors(word, message):
    with pytest.raises(sw.SweepError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        sw.parse_spec([word])


def test_grammar_duplicate_key():
    with pytest.raises(sw.SweepError, match="lr is given twice"):
        sw.parse_spec(["lr=1e-3", "lr=3e-4"])


def test_validate_builds_every_grid_point():
    sw.validate(sw.parse_spec(["algo=ippo,mappo", "lr=1e-3,3e-4"]))
    with pytest.raises(sw.SweepError, match=r"algo='nope' is unknown.*\(at algo=nope\)"):
        sw.validate(sw.parse_spec(["algo=ippo,nope"]))
    # a combination the config rejects (minibatches must divide the env-steps of one update)
    with pytest.raises(sw.SweepError, match=r"num_minibatches=3 must divide.*\(at num_minibatches=3\)"):
        sw.validate(sw.parse_spec(["num_envs=4", "rollout_length=8", "num_minibatches=2,3"]))


def test_trial_name():
    trial = SimpleNamespace(trial_id="ab12c_00007", config={"algo": "ippo", "lr": 0.000123456, "hidden": [64, 64],
                                                            "env": "pkg.mod:make"})
    assert sw.trial_name(trial, ("algo", "lr", "hidden")) == "t00007_algo=ippo_lr=0.0001235_hidden=64x64"
    assert sw.trial_name(trial, ("env",)) == "t00007_env=pkg.mod-make"
    assert sw.trial_name(trial) == "t00007"
    long = SimpleNamespace(trial_id="x_00001", config={"env_options": "{" + "a" * 300 + "}"})
    assert len(sw.trial_name(long, ("env_options",))) == 120


# --------------------------------------------------------------------------------------------
# metrics.csv -> Tune reports
# --------------------------------------------------------------------------------------------


def test_metrics_tail(tmp_path):
    path = tmp_path / "metrics.csv"
    tail = sw.MetricsTail(path, num_seeds=2)
    assert tail.poll() == []                                     # no file yet
    path.write_text("seed,update,env_steps,return_mean,win_rate\n0,1,100,1.0,\n1,1,100,3.0,\n0,2,200,5.0,")
    (r1,) = tail.poll()                                          # update 2: seed 1 missing, last line partial
    assert r1["update"] == 1 and r1["env_steps"] == 100 and r1["return_mean"] == 2.0
    assert r1["win_rate"] != r1["win_rate"]                      # NaN: no win rate logged
    with path.open("a") as fh:
        fh.write("\n1,2,200,,\n")                                # seed 1 logged no return in update 2
    (r2,) = tail.poll()
    assert (r2["update"], r2["return_mean"]) == (2, 5.0)
    assert tail.poll() == []
    # a resumed run truncates the file to its last checkpoint and appends again: no update is repeated
    path.write_text("seed,update,env_steps,return_mean,win_rate\n0,1,100,1.0,\n1,1,100,3.0,\n")
    assert tail.poll() == []
    # (this one was truncated in place, smaller than what was read)
    with path.open("a") as fh:
        fh.write("0,2,200,7.0,0.5\n1,2,200,9.0,1.0\n0,3,300,1.0,0\n1,3,300,1.0,0\n")
    reports = tail.poll()
    assert [r["update"] for r in reports] == [3]
    assert reports[0]["win_rate"] == 0.0


def test_metrics_tail_waits_for_a_resumed_run_to_replace_its_file(tmp_path):
    """A resumed trial's old metrics.csv (rows past the checkpoint included) is not read; the file the run
    loop writes in its place (atomically, a new inode) is read from the start."""
    path = tmp_path / "metrics.csv"
    header = "seed,update,env_steps,return_mean,win_rate\n"
    path.write_text(header + "0,1,100,1.0,\n0,2,200,2.0,\n0,3,300,99.0,\n")   # checkpoint at update 2
    tail = sw.MetricsTail(path, num_seeds=1, stale_inode=path.stat().st_ino)
    assert tail.poll() == []
    tmp = tmp_path / "metrics.csv.tmp"
    tmp.write_text(header + "0,1,100,1.0,\n0,2,200,2.0,\n")
    os.replace(tmp, path)
    assert [r["update"] for r in tail.poll()] == [1, 2]
    with path.open("a") as fh:
        fh.write("0,3,300,3.0,\n")
    (r3,) = tail.poll()
    assert (r3["update"], r3["return_mean"]) == (3, 3.0)


def test_param_space():
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (the optional sweep extra)")
    axes = sw.parse_spec(["algo=ippo,mappo", "lr=loguniform:1e-4,1e-3", "num_seeds=2"])
    space = sw.param_space(axes)
    assert space["algo"] == {"grid_search": ["ippo", "mappo"]}
    assert space["num_seeds"] == 2
    assert type(space["lr"]).__name__ == "Float"
    assert type(sw.param_space(axes, basic=False)["algo"]).__name__ == "Categorical"


def test_cli_reports_bad_words_before_ray(tmp_path, capsys):
    from trustmarl.cli import main
    assert main(["sweep", "lrr=1", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'lrr'" in err or "needs Ray Tune" in err
    assert not (tmp_path / "s" / "sweep.json").exists()


# --------------------------------------------------------------------------------------------
# end to end on a local Ray head
# --------------------------------------------------------------------------------------------


def _sweep_cmd(out: Path, *words: str) -> list[str]:
    return [sys.executable, "-m", "trustmarl.cli", "sweep", *words, "--num-cpus", "2", "--out", str(out)]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # the test's head is its own, never a cluster the environment points at
    return env


def _rows(run_dir: Path) -> list[tuple[int, int]]:
    with (run_dir / "metrics.csv").open(newline="") as fh:
        return [(int(r["seed"]), int(r["update"])) for r in csv.DictReader(fh)]


@needs_ray
@pytest.mark.slow
def test_sweep_resumes_after_the_driver_is_killed(tmp_path):
    """End to end on a local Ray head, two trials: the driver (and the Ray head inside it) is killed once a
    trial has written a checkpoint; ``--resume`` finishes the sweep: both run folders complete with their
    own config, no update logged twice, the summary table over seeds printed; the finished folder is then
    refused without ``--resume``. (One sweep for both the end-to-end and the resume checks: each Ray head
    costs tens of seconds of the suite.)"""
    out = tmp_path / "sweep"
    words = [*TINY_WORDS, "total_env_steps=1500", "checkpoint_every=3", "lr=1e-3,3e-4"]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_sweep_cmd(out, *words), stdout=log, stderr=subprocess.STDOUT, env=_env(),
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.isdigit() for p in out.glob("t*/checkpoints/*")):
                break
            time.sleep(0.5)
        first_rc = proc.poll()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)   # the driver's whole process group: driver, GCS, raylet
        proc.wait()
        log.close()
    assert first_rc is None, f"the first sweep ended before a checkpoint (rc {first_rc}):\n" \
                             f"{(tmp_path / 'first.log').read_text()[-4000:]}"
    resumed = subprocess.run(_sweep_cmd(out, "--resume"), capture_output=True, text=True, timeout=400, env=_env())
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, f"resume failed (rc {resumed.returncode}):\n{text[-6000:]}"
    assert "resuming in" in resumed.stdout
    assert "sweep: 2 trial(s), 2 finished, 0 failed" in resumed.stdout, text[-3000:]
    runs = sorted(p.parent for p in out.glob("t*/metrics.csv"))
    assert len(runs) == 2
    # the head the CLI started bound the loopback address and ran no dashboard
    assert "on a local Ray head (loopback only, dashboard off) at 127.0.0.1:" in resumed.stdout, text[-3000:]
    assert [r.name for r in runs] == ["t00000_lr=0.001", "t00001_lr=0.0003"]
    for run, lr in zip(runs, (1e-3, 3e-4)):
        config = json.loads((run / "config.json").read_text())
        assert (config["lr"], config["algo"], config["num_seeds"], config["progress"]) == (lr, "ippo", 2, False)
        rows = _rows(run)
        assert sorted(rows) == sorted({(s, u) for s in (0, 1) for u in range(1, 16)}), run.name
        assert (run / "summary.json").is_file()
    assert (out / "sweep.json").is_file() and (out / "tune").is_dir()
    # the summary table over seeds, one row per learning rate
    assert "| lr | n | mean ± std | 95% CI (mean) | IQM | 95% CI (IQM) |" in resumed.stdout, text[-3000:]
    assert "| 0.0003 | 2 | " in resumed.stdout and "| 0.001 | 2 | " in resumed.stdout
    # the same folder again without --resume is refused
    again = subprocess.run(_sweep_cmd(out, "lr=1e-3"), capture_output=True, text=True, timeout=60, env=_env())
    assert again.returncode == 2 and "already holds a sweep; --resume finishes it" in again.stderr
