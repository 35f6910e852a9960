"""Shared fixtures: tiny configs and trainers compiled once per session (compilation dominates test time)."""
from __future__ import annotations

import gc
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent compilation cache per test session, shared by the xdist workers and by the subprocesses the tests
# start (they inherit the environment): many tests rebuild the same tiny trainer, and a new closure is a new jit,
# so without it XLA compiles the same program again and again; compiling dominates the suite's time. The key is
# the program and the compiler's settings, so a hit returns the executable a fresh compile would build.
_OWN_CACHE = "TRUSTMARL_TEST_JAX_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["TRUSTMARL_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="trustmarl-jax-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["TRUSTMARL_TEST_JAX_CACHE"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
import jax
import pytest

from trustmarl.config import Config

# jax may have been imported before this file (by a plugin): set what the environment above says explicitly
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                  int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))


def pytest_unconfigure(config):
    """The process that made the session's compilation cache removes it (xdist workers inherit and keep it)."""
    if _OWN_CACHE:
        shutil.rmtree(os.environ["TRUSTMARL_TEST_JAX_CACHE"], ignore_errors=True)


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
