"""Shared fixtures: tiny configs and trainers compiled once per session (compilation dominates test time)."""
from __future__ import annotations

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
    from trustmarl.trainers import make_train
    trainer = make_train(tiny(algo="ippo", env="mpe_spread", num_agents=2))
    state, metrics = jax.jit(trainer)(jax.random.PRNGKey(0))
    return trainer, state, metrics


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs_after_each_module():
    """Release every compiled XLA program when a test module ends.

    One pytest process compiles over a thousand programs in this suite; kept alive until the end, the CPU
    executables' code and memory mappings pile up, and late in two full runs an XLA compile in
    test_trainer.py died (a fault in the C++ unwinder, then an abort) while the same tests pass on their
    own. Dropping the caches between modules keeps the process's footprint at about one module's."""
    yield
    jax.clear_caches()
    gc.collect()
