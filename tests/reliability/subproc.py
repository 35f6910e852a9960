"""Helpers of the reliability tests that run the ``trustmarl`` CLI in subprocesses (importable as ``subproc``)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENVS_DIR = HERE.parent / "envs"  # custom_envs (the cue game as a PettingZoo env)

# A tiny MAPPO run on the jaxmarl-free cue game: 12 updates of 2 seeds x 4 envs x 8 steps, one update per chunk.
TINY_ARGS = ["algo=mappo", "env=fast_envs:make_fast", "num_envs=4", "rollout_length=8", "update_epochs=2",
             "num_minibatches=2", "hidden=16,16", "num_seeds=2", "total_env_steps=384", "log_every=1",
             "checkpoint_every=2", "progress=false"]


def cli_env(cache_dir: Path | None = None, **extra) -> dict:
    """Environment of a CLI subprocess: the test envs importable, CPU only, a shared compilation cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ENVS_DIR)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("TRUSTMARL_TEST_KILL_AT", None)
    if cache_dir is not None:  # compiled programs shared between the processes of one test (same results)
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(args: list[str], env: dict, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trustmarl.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def popen(args: list[str], env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trustmarl.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def raw_checkpoint(run_dir: Path) -> dict:
    """The last checkpoint of a run folder as numpy arrays (restored from its own metadata, no template)."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    with ocp.CheckpointManager(Path(run_dir, "checkpoints").absolute(),
                               options=ocp.CheckpointManagerOptions(create=False)) as mngr:
        step = mngr.latest_step()
        tree = mngr.restore(step, args=ocp.args.StandardRestore())
    return {"step": step, "leaves": [np.asarray(x) for x in jax.tree.leaves(tree)]}
