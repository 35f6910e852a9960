"""The critic's final-state values: computed on the ended rows only, equal to valuing every row and keeping the
ended ones (OnPolicyTrainer.final_values, the bootstrap of a truncated episode)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.networks import Critic, init_agents
from trustmarl.trainers import make_train

from conftest import tiny

T, E = 8, 4  # 32 (t, e) rows: chunks of 2


def _every_row(trainer, params, states, final_x):
    """Critic.final_value on all T·E·A rows at once (per agent: vmapped over the agent axis)."""
    A = final_x.shape[2]
    fn = lambda p, s, x: trainer.critic.module.apply(p, s, x, method=Critic.final_value)  # noqa: E731
    if trainer.critic.shared:
        return fn(params, states.reshape(T * E * A, -1), final_x.reshape(T * E * A, -1)).reshape(T, E, A)
    return jax.vmap(fn, in_axes=(0, 2, 2), out_axes=2)(params, states, final_x)


@pytest.mark.parametrize("case", [
    dict(algo="mappo", env="smax", map="3m", network="gru", hidden=(16,)),
    dict(algo="mappo", env="smax", map="3m", network="gru", hidden=(16,), share_params=False),
    dict(algo="ippo", env="mpe_spread", num_agents=3, network="ff"),
], ids=["gru_shared", "gru_per_agent", "ff"])
def test_final_values_equal_every_row_where_ended(case):
    trainer = make_train(tiny(**case))
    params = jax.jit(lambda k: init_agents(trainer.critic, k, jnp.zeros((trainer.critic_in_dim,))))(
        jax.random.PRNGKey(0))
    A, H = trainer.num_agents, 16
    r = np.random.default_rng(0)
    states = jnp.asarray(r.normal(size=(T, E, A, H)).astype(np.float32))
    final_x = jnp.asarray(r.normal(size=(T, E, A, trainer.critic_in_dim)).astype(np.float32))
    full = np.asarray(_every_row(trainer, params, states, final_x))
    fn = jax.jit(trainer.final_values)
    few = np.zeros((T, E), bool)
    few[[0, 3, 7], [1, 2, 0]] = True  # 3 rows: two chunks
    for ended in (few, np.ones((T, E), bool), r.random((T, E)) < 0.5):
        want = np.where(ended[..., None], full, 0.0)
        for f in (trainer.final_values, fn):
            got = np.asarray(f(params, states, final_x, jnp.asarray(ended)))
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.any(np.asarray(fn(params, states, final_x, jnp.zeros((T, E), bool))))
