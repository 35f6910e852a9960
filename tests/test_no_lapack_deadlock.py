"""Issue: vmapped orthogonal initialisation deadlocked XLA's 2-thread CPU pool (docs/known-issues.md).

Three levels: the plain-JAX QR and initialiser against JAX's LAPACK-backed one on numbers (jit and no-jit);
every program the project builds is free of LAPACK custom calls (read from its lowered text, so the check
costs no compilation); and a regression run in a fresh process with a time limit, 25 initialisations of
8 seeds with per-agent parameters, FF and GRU, which hung with the old initialiser. (The update programs are
covered by the LAPACK-free check; the hang was in the vmapped initialisation's batched QR.)
"""
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.linen.initializers import orthogonal as jax_orthogonal

from trustmarl.networks import householder_qr, orthogonal

from conftest import tiny


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("shape,scale", [((64, 64), 1.0), ((10, 64), 2 ** 0.5), ((64, 5), 0.01),
                                         ((300, 32), 2 ** 0.5), ((3, 4, 5), 1.0)])
def test_orthogonal_equals_jax_initialiser(shape, scale, jit):
    key = jax.random.PRNGKey(7)
    ours = (jax.jit(orthogonal(scale), static_argnums=1) if jit else orthogonal(scale))(key, shape)
    ref = jax_orthogonal(scale)(key, shape)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=5e-6 * max(scale, 1.0))
    q = np.asarray(ours).reshape(-1, shape[-1]) / scale
    small = min(q.shape)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)


def test_householder_qr_on_hand_numbers():
    """A = [[3, 1], [4, 2]]: the first reflection maps column (3, 4) to (−5, 0), so R = [[−5, −2.2], [0, −0.4]]
    and Q = A R⁻¹ = [[−0.6, 0.8], [−0.8, −0.6]] (Householder's sign convention α = −sign(x_k)‖x‖)."""
    q, d = householder_qr(jnp.array([[3.0, 1.0], [4.0, 2.0]]))
    np.testing.assert_allclose(np.asarray(d), [-5.0, -0.4], atol=1e-6)
    np.testing.assert_allclose(np.asarray(q), [[-0.6, 0.8], [-0.8, -0.6]], atol=1e-6)


def _programs():
    """(name, lowered text) of the jitted, vmapped programs the run loop and the Python API build."""
    from trustmarl.trainers import make_train
    configs = {
        "ippo-ff-mpe-per-agent": tiny(algo="ippo", env="mpe_spread", num_agents=3, share_params=False),
        "mappo-gru-smax-per-agent": tiny(algo="mappo", env="smax", map="3m", network="gru", hidden=(16,),
                                         share_params=False),
        "jrppo-ff-continuous": tiny(algo="jrppo", env="mpe_spread", num_agents=2,
                                    env_options='{"continuous": true}'),
    }
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    for name, cfg in configs.items():
        trainer = make_train(cfg)
        yield name + ":train", jax.jit(jax.vmap(trainer)).lower(keys).as_text()
        yield name + ":init", jax.jit(jax.vmap(trainer.init)).lower(keys).as_text()


def test_no_program_calls_lapack():
    """Batched LAPACK kernels split themselves over XLA's CPU pool and can wait on each other forever; no
    program of the project may contain one (``lapack_*`` custom calls in the lowered StableHLO)."""
    for name, text in _programs():
        assert "lapack" not in text.lower(), f"{name} calls a LAPACK kernel"


_REGRESSION = textwrap.dedent("""
    import sys, time
    import jax
    from conftest import tiny
    from trustmarl.trainers import make_train
    for network, hidden in (("ff", (16, 16)), ("gru", (16,))):
        trainer = make_train(tiny(algo="mappo", env="mpe_spread", num_agents=3, network=network,
                                  hidden=hidden, share_params=False))
        init = jax.jit(jax.vmap(trainer.init))
        t = time.perf_counter()
        for i in range(25):
            jax.block_until_ready(init(jax.random.split(jax.random.PRNGKey(i), 8)))
        print(network, "25 runs", round(time.perf_counter() - t, 1), "s", flush=True)
    print("finished")
""")


def test_twenty_five_vmapped_initialisations_finish():
    """With ``flax``'s LAPACK orthogonal initialiser this hung within 20 calls in 3 of 5 tries on 2 cores
    (25 calls per network here, 50 in all)."""
    import os
    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.run([sys.executable, "-c", _REGRESSION], capture_output=True, text=True, timeout=300,
                              env=env, cwd=here)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"25 initialisations per network did not finish in 300 s (deadlock?): {err.stdout!r}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "finished" in proc.stdout, proc.stdout
