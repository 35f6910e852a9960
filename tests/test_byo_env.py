"""Bring your own environment, end to end through the trainer, the run loop and the CLI.

The tiny user envs live in ``tests/envs/custom_envs.py`` (importable as ``custom_envs``): a cue-matching game
as a JaxMARL ``MultiAgentEnv`` and as a PettingZoo ``ParallelEnv``. Random play earns 1/3 per agent-step.
"""
import json
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "envs"))

import custom_envs as ce  # noqa: E402
from trustmarl import cli  # noqa: E402
from trustmarl.envs import as_jax_env, register_env  # noqa: E402
from trustmarl.trainers import make_train  # noqa: E402

from conftest import tiny  # noqa: E402

SMALL = ["num_envs=4", "rollout_length=8", "total_env_steps=64", "hidden=8", "progress=false", "log_every=1",
         "update_epochs=1", "num_minibatches=1"]


def test_python_api_trains_on_a_users_jaxmarl_env():
    """``make_train(config, env=as_jax_env(my_env))``: IPPO learns the cue game (reward per step 1/3 → near 1)."""
    cfg = tiny(algo="ippo", env="mpe_spread", num_envs=16, rollout_length=16, total_env_steps=16 * 16 * 40,
               hidden=(32,), lr=3e-3, update_epochs=4, num_minibatches=4, measure_trust_region=False)
    trainer = make_train(cfg, env=as_jax_env(ce.CueEnv(max_steps=5)))
    assert trainer.spec.num_agents == 2 and trainer.spec.episode_limit == 5
    _, m = jax.jit(trainer)(jax.random.PRNGKey(0))
    r = np.asarray(m["reward_mean"])
    assert r[:3].mean() < 0.5 and r[-3:].mean() > 0.8, r


def test_registered_factory_runs_through_the_loop(tmp_path):
    from trustmarl import runtime
    register_env("cue_game_test", ce.make_cue_env, doc="test cue game", options=("max_steps",), overwrite=True)
    s = runtime.train(tiny(algo="mappo", env="cue_game_test", env_options='{"max_steps": 4}'),
                      run_dir=tmp_path / "run", plot=False)
    assert s["env_steps"] == 4 * 8 * 3 and json.loads((tmp_path / "run" / "config.json").read_text())[
        "env_spec"]["episode_limit"] == 4


def test_cli_module_factory_jax_env(tmp_path, capsys):
    assert cli.main(["train", "env=custom_envs:make_cue_env", "algo=ippo", *SMALL, f"out_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("ippo_custom_envs-make_cue_env_"), runs
    assert "done: 64 env steps" in out
    assert cli.main(["eval", str(runs[0]), "--episodes", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3


def test_cli_module_factory_pettingzoo_env_host_path_eval_and_render(tmp_path, capsys):
    """A PettingZoo env named by package.module:factory trains through the host path; eval works on the
    run folder; render says clearly that this env cannot draw."""
    assert cli.main(["train", "env=custom_envs:make_pz_env", "algo=mappo", *SMALL, f"out_dir={tmp_path}",
                     "run_name=pz"]) == 0
    info = json.loads((tmp_path / "pz" / "config.json").read_text())
    assert info["host_env"]["name"] == "host:cue_pz"
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "pz"), "--episodes", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 5 and out["episode_length"] == 5 and 0 <= out["return_mean"] <= 5
    assert cli.main(["render", str(tmp_path / "pz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trustmarl: error: env 'host:cue_pz' cannot draw") and "\n" not in err


def test_host_run_eval_and_render_on_pursuit(tmp_path, capsys):
    """pursuit_v5 draws (render_mode='rgb_array'): a host-path run folder renders to a GIF."""
    assert cli.main(["train", "env=pz_pursuit", "algo=ippo", *SMALL, f"out_dir={tmp_path}", "run_name=p",
                     'env_options={"max_cycles": 6, "n_evaders": 5}']) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "p"), "--episodes", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["episode_length"] == 6
    gif = tmp_path / "p.gif"
    assert cli.main(["render", str(tmp_path / "p"), "--out", str(gif)]) == 0, capsys.readouterr().err
    assert gif.exists() and gif.stat().st_size > 1000


def test_unknown_env_module_is_a_one_line_error(capsys):
    assert cli.main(["train", "env=no_such_pkg.mod:factory"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_pkg.mod:factory" in err and "\n" not in err
