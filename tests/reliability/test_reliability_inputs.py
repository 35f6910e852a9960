"""Every bad config value and CLI line gives one line naming the value and what is allowed, exit code 2, and no
traceback; nothing a user loads is executed (configs are JSON, checkpoints orbax, never pickle).
docs/reliability.md counts the inputs tried here (``BAD_INPUTS`` and the run-folder cases)."""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from subproc import cli_env
from trustmarl import cli

TINY = ["env=fast_envs:make_fast", "num_envs=4", "rollout_length=8", "hidden=8", "update_epochs=1",
        "num_minibatches=1", "total_env_steps=64", "progress=false"]

# (argv, words the single error line must hold)
BAD_INPUTS = [
    (["train", "lr=abc"], "lr='abc' is not a number"),
    (["train", "lr=-1"], "lr=-1.0 must be > 0"),
    (["train", "lr=0"], "lr=0.0 must be > 0"),
    (["train", "lr=nan"], "lr=nan must be a finite number"),
    (["train", "lr=inf"], "lr=inf must be a finite number"),
    (["train", "gamma=1.5"], "gamma=1.5 must be <= 1"),
    (["train", "num_envs=0"], "num_envs=0 must be >= 1"),
    (["train", "num_envs=2.5"], "num_envs='2.5' is not an integer"),
    (["train", "num_seeds=-1"], "num_seeds=-1 must be >= 1"),
    (["train", "seed=-3"], "seed=-3 must be >= 0"),
    (["train", "seed=99999999999"], "seed=99999999999 must be <= 4294967295"),
    (["train", "total_env_steps=-100"], "total_env_steps=-100 must be >= 1"),
    (["train", "total_env_steps=0"], "total_env_steps=0 must be >= 1"),
    (["train", "clip_kind=wide"], "clip_kind='wide' is not one of symmetric, multiplicative"),
    (["train", "network=lstm"], "network='lstm' is not one of ff, gru"),
    (["train", "activation=sigmoid"], "activation='sigmoid' is not one of tanh, relu, gelu"),
    (["train", "hidden=a,b"], "hidden='a,b' is not comma-separated integers"),
    (["train", "hidden=0"], "hidden=(0,) must be one or more positive widths"),
    (["train", "anneal_lr=maybe"], "anneal_lr='maybe' is not true/false"),
    (["train", "foo=1"], "unknown config key 'foo'"),
    (["train", "lrr=0.1"], "unknown config key 'lrr' (did you mean lr?)"),
    (["train", "lr"], "argument 'lr' is not key=value"),
    (["train", "algo=nope"], "algo='nope' is unknown; allowed: "),
    (["train", "env=nope"], "env='nope' is unknown; allowed: "),
    (["train", "env=no_such_module:make"], "module 'no_such_module' cannot be imported"),
    (["train", "env=fast_envs:NOPE"], "module 'fast_envs' has no attribute 'NOPE'"),
    (["train", "env=smax", "map=nope"], "map='nope' is not a SMAX map; allowed: "),
    (["train", "env_options={bad"], "env_options='{bad' is not JSON"),
    (["train", "env_options=[1,2]"], "env_options='[1,2]' must be a JSON object"),
    (["train", *TINY, 'env_options={"nope": 1}'], "bad option for env='fast_envs:make_fast'"),
    (["train", "algo=ippo", "num_batches=3"], "num_batches=3 is not read by algo=ippo"),
    (["train", "num_envs=4", "rollout_length=8", "num_minibatches=3"], "num_minibatches=3 must divide the 32"),
    (["train", "stall_timeout=-1"], "stall_timeout=-1.0 must be >= 0"),
    (["train", "checkpoint_every=-1"], "checkpoint_every=-1 must be >= 0"),
    (["train", "log_every=-2"], "log_every=-2 must be >= 0"),
    (["train", "value_norm_beta=2"], "value_norm_beta=2.0 must be <= 1"),
    (["train", "clip_eps=0"], "clip_eps=0.0 must be > 0"),
    (["train", "ratio=nope"], "ratio='nope' is not one of"),
    (["train", "global_state=weird"], "global_state='weird' is not one of auto, agent_specific, env, concat_obs"),
    (["train", "measure_at=never"], "measure_at='never' is not one of epoch_end, minibatch"),
    (["train", "update_epochs=0"], "update_epochs=0 must be >= 1"),
    (["train", "num_agents=0"], "num_agents=0 must be >= 1"),
    (["train", "--keys", "lr=1"], "--keys takes only algo=<name>, not 'lr=1'"),
    (["train", "--keys", "algo=nope"], "algo='nope' is unknown"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["resume"], "the following arguments are required: run_dir"),
    (["resume", "/no/such/run"], "run folder '/no/such/run' does not exist; allowed: a folder written by"),
    (["eval", "/no/such/run"], "run folder '/no/such/run' does not exist"),
    (["eval", "/no/such/run", "--episodes", "0"], "--episodes=0 must be >= 1"),
    (["eval", "/no/such/run", "--episodes", "abc"], "argument --episodes: invalid int value: 'abc'"),
    (["eval", "/no/such/run", "--seed", "-1"], "--seed=-1 must be >= 0"),
    (["render", "/no/such/run"], "run folder '/no/such/run' does not exist"),
    (["plot", "fig99", "/no/such/run"], "figure 'fig99' is unknown; allowed: "),
    (["plot", "tv-cdf", "/no/such/run"], "run folder '/no/such/run' does not exist"),
    (["reproduce", "sun2022-fig1", "--budget", "-1"], "--budget=-1.0 must be a fraction of the paper's env steps > 0"),
    (["reproduce", "sun2022-fig1", "--seeds", "0"], "--seeds=0 must be >= 1"),
    (["reproduce", "fig-nope"], "experiment 'fig-nope' is unknown; allowed: "),
    (["check-env", "nope"], "env='nope' is unknown; allowed: "),
    (["check-env", "fast_envs:make_fast", "--options", "{bad"], "--options='{bad' is not JSON"),
    (["fly"], "argument command: invalid choice: 'fly'"),
    ([], "the following arguments are required: command"),
]


def _one_error_line(capfd, argv, words, code=2):
    try:
        got = cli.main(argv)
    except SystemExit as e:  # argparse
        got = e.code
    out = capfd.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert got == code, (argv, got, out.err)
    assert len(lines) == 1 and lines[0].startswith("trustmarl: error: "), (argv, out.err)
    assert words in lines[0], (argv, lines[0])
    assert "Traceback" not in out.err + out.out
    return lines[0]


@pytest.mark.parametrize("argv,words", BAD_INPUTS, ids=[" ".join(a)[:60] or "<none>" for a, _ in BAD_INPUTS])
def test_bad_input_gives_one_line_and_exit_code_2(capfd, argv, words):
    _one_error_line(capfd, argv, words)


# --- run folders: missing, corrupt, foreign -----------------------------------------------------------------------
class Payload:
    """A pickle whose loading creates a file: proof that something was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _run_folder(tmp_path: Path, name: str, config: dict | None = None) -> Path:
    d = tmp_path / name
    d.mkdir()
    cfg = {"algo": "ippo", "env": "fast_envs:make_fast", "num_envs": 4, "rollout_length": 8, "hidden": [8],
           "update_epochs": 1, "num_minibatches": 1, "total_env_steps": 64, "progress": False}
    (d / "config.json").write_text(json.dumps(config if config is not None else cfg))
    return d


RUN_FOLDER_CASES = 12  # the cases of the test below (docs/reliability.md counts them)


def test_missing_corrupt_and_foreign_run_folders(tmp_path, capfd):
    marker = tmp_path / "EXECUTED"
    payload = pickle.dumps(Payload(marker))
    empty = tmp_path / "empty"
    empty.mkdir()
    for cmd in ("resume", "eval", "render"):
        _one_error_line(capfd, [cmd, str(empty)], f"{empty} is not a run folder (no config.json)")
    garbage = _run_folder(tmp_path, "garbage")
    (garbage / "config.json").write_bytes(b"\x00\x01 not json")
    _one_error_line(capfd, ["resume", str(garbage)], "config.json is not a JSON config")
    pickled = _run_folder(tmp_path, "pickled")
    (pickled / "config.json").write_bytes(payload)  # a pickle renamed as a config
    _one_error_line(capfd, ["resume", str(pickled)], "config.json is not a JSON config")
    _one_error_line(capfd, ["eval", str(pickled)], "never executed")
    listed = _run_folder(tmp_path, "listed", config=[1, 2])
    _one_error_line(capfd, ["resume", str(listed)], "holds a JSON list; allowed: a JSON object of config keys")
    bad_value = _run_folder(tmp_path, "bad_value", config={"algo": "ippo", "lr": "abc"})
    _one_error_line(capfd, ["resume", str(bad_value)], "config.json: lr='abc' is not a number")
    ok = _run_folder(tmp_path, "ok")
    _one_error_line(capfd, ["resume", str(ok), "lr=-1"], "lr=-1.0 must be > 0")
    _one_error_line(capfd, ["eval", str(ok), "--seed-index", "5"], "--seed-index=5 must be in [0, 0]")
    # plot: no metrics.csv, and a metrics.csv that is not one
    _one_error_line(capfd, ["plot", "tv-cdf", str(ok)], "holds no metrics.csv")
    (ok / "metrics.csv").write_bytes(payload)
    _one_error_line(capfd, ["plot", "ratio-range", str(ok)], "metrics.csv is not a")
    assert not marker.exists(), "a loaded file was executed"


def test_foreign_checkpoints_are_refused_without_executing_them(tmp_path, capfd):
    """A pickle payload renamed as checkpoint files, and checkpoint folders of garbage: one line, exit 2."""
    from trustmarl.runtime.checkpoints import save_checkpoint
    import numpy as np
    marker = tmp_path / "EXECUTED"
    payload = pickle.dumps(Payload(marker))
    run = _run_folder(tmp_path, "run")
    save_checkpoint(run, {"w": np.zeros(3, np.float32)}, 2)  # a real orbax checkpoint folder ...
    for f in (run / "checkpoints" / "2").rglob("*"):
        if f.is_file():
            f.write_bytes(payload)  # ... whose every file is now a pickle payload
    line = _one_error_line(capfd, ["eval", str(run), "--episodes", "1"], "checkpoint 2 in ")
    assert "cannot be read as this run's train state" in line
    _one_error_line(capfd, ["resume", str(run)], "cannot be read as this run's train state")
    assert not marker.exists(), "a checkpoint file was unpickled"
    # a checkpoint of another state (another config) is refused too
    other = _run_folder(tmp_path, "other")
    save_checkpoint(other, {"w": np.zeros(3, np.float32)}, 2)
    _one_error_line(capfd, ["render", str(other)], "checkpoint 2 in ")


def test_no_pickle_of_user_files_in_the_source():
    """configs are JSON, checkpoints orbax: no module of trustmarl unpickles or evals what a user hands it."""
    src = Path(__file__).resolve().parents[2] / "src" / "trustmarl"
    banned = re.compile(r"pickle\.loads?\(|allow_pickle=True|yaml\.load\(|marshal\.loads?\(|(?<![\w.])(eval|exec)\(")
    hits = [f"{p.name}: {m.group(0)}" for p in src.rglob("*.py") for m in banned.finditer(p.read_text())]
    assert hits == [], hits


def test_console_entry_point_gives_one_line_without_traceback(tmp_path):
    """The real process: the same single line and exit code 2 (nothing printed by imports on the way)."""
    for argv, words in ((["train", "lr=abc"], "lr='abc' is not a number"),
                        (["resume", str(tmp_path / "nope")], "does not exist")):
        proc = subprocess.run([sys.executable, "-m", "trustmarl.cli", *argv], env=cli_env(), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr
