"""The ``death_masking`` env option (issue 9 item 1, parity difference 6): off, a dead agent's critic state keeps
the world state, as JaxMARL's mappo_rnn_smax gives it; on (default), it is zeros beside the agent's one-hot."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trustmarl.envs import make_env


@pytest.mark.parametrize("kind", ["env", "agent_specific"])
def test_dead_agent_state_kept_or_zeroed(kind):
    masked = make_env("smax", map="3m", global_state=kind)
    kept = make_env("smax", map="3m", global_state=kind, death_masking=False)
    obs_dict, env_state = masked.env.reset(jax.random.PRNGKey(0))
    obs = masked._stack_obs(obs_dict)
    alive = jnp.array([False, True, True])  # agent 0 dead
    a = np.asarray(masked._global_state(env_state, obs, alive))
    b = np.asarray(kept._global_state(env_state, obs, alive))
    n = 3
    np.testing.assert_array_equal(a[0, :-n], 0.0)  # masked: zeros ...
    np.testing.assert_array_equal(a[:, -n:], np.eye(n))  # ... beside the one-hot, which both keep
    np.testing.assert_array_equal(b[:, -n:], np.eye(n))
    assert np.abs(b[0, :-n]).sum() > 0  # kept: the dead agent's body is not zeroed
    np.testing.assert_array_equal(a[1:], b[1:])  # living agents identical
    if kind == "env":
        np.testing.assert_array_equal(b[0], np.concatenate([b[1, :-n], np.eye(n)[0]]))  # the same world state


def test_death_masking_bad_value():
    with pytest.raises(ValueError, match="death_masking"):
        make_env("smax", map="3m", death_masking="no")
