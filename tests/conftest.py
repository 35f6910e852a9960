"""Shared fixtures: tiny configs and trainers compiled once per session (compilation dominates test time)."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA's multi-threaded Eigen pool on CPU is known to wedge now and then on vmapped programs (the jitted
# call never returns, CPU idle: PyAutoLabs/PyAutoFit#1528/#1530, 14 hangs in 16 runs without this flag,
# none with it). Two full runs of this suite hung that way in the 2-seed learning test; the flag is set
# before JAX starts its backend, and children (the learning test's subprocess) inherit it. It is not the
# whole cure: one CI run still wedged in that subprocess, which is why the learning test retries once.
if "--xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()

import jax
import pytest

from trustmarl.config import Config

TINY = dict(num_envs=4, rollout_length=8, update_epochs=2, num_minibatches=2, hidden=(16, 16),
            total_env_steps=4 * 8 * 3, progress=False, checkpoint_every=1, log_every=1)


def tiny(**kw) -> Config:
    """A config small enough to compile and run in seconds; ``kw`` overrides."""
    return Config.build({**TINY, **kw})


@pytest.fixture
def tiny_config():
    return tiny


@pytest.fixture(scope="session")
def trained_tiny():
    """(trainer, state, metrics) of a tiny IPPO run on 2-agent MPE, compiled once for several tests."""
    from trustmarl.trainer import make_train
    trainer = make_train(tiny(algo="ippo", env="mpe_spread", num_agents=2))
    state, metrics = jax.jit(trainer)(jax.random.PRNGKey(0))
    return trainer, state, metrics


_LAST = ("test_host.py", "test_grf.py")


def pytest_collection_modifyitems(session, config, items):
    """Run the host-path and GRF tests last.

    They start worker processes and load gfootball's C++ engine in the test process. Once, in a full
    run, a later jitted computation in the same process never returned (an XLA wait with the CPU idle),
    while the same tests passed in a fresh process; keeping them at the end protects the rest of the suite.
    """
    items.sort(key=lambda item: item.fspath.basename in _LAST)
