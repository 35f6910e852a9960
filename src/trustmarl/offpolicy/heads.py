"""Action heads of the off-policy family: what a policy network's output means, one object per action kind.

The trainer (:mod:`trustmarl.trainers.off_policy`) and the algorithms' rules see a policy only through its
head, so discrete and continuous actions share every network, buffer and loss skeleton; the head is chosen
once from the env's action space and the rule's ``continuous`` entry (:func:`make_head`):

* :class:`CategoricalHead` — discrete actions (all four algorithms): logits ``z`` ``[..., U]``, masked by the
  available actions; the critic sees the one-hot action.
* :class:`DeterministicTanhHead` — MADDPG's continuous actor (Lowe et al. 2017; maddpg-pytorch): ``a = tanh(z)``
  ``[..., D]``, explored with Gaussian noise ``clip(tanh(z) + σξ, −1, 1)``, ``ξ ~ N(0, I)``, ``σ = explore_noise``.
* :class:`SquashedGaussianHead` — the soft actor for continuous actions (SAC, Haarnoja et al. 2018, App. C):
  outputs ``μ ⊕ log σ`` ``[..., 2D]`` (``log σ`` clipped to ``[−20, 2]``), ``u = μ + σξ``, ``a = tanh(u)``, and

      log π(a|o) = Σ_d [ log N(u_d; μ_d, σ_d) − log(1 − tanh(u_d)²) ]                       (SAC eq. 21)

  with ``log(1 − tanh(u)²) = 2(log 2 − u − softplus(−2u))`` (exact, and finite for large ``|u|``).

Continuous actions are kept in the normalised box ``[−1, 1]^D`` everywhere inside the trainer (buffer, critics,
log-probabilities); :meth:`env_action` maps them affinely onto the env's ``[action_low, action_high]`` only
when the env is stepped, so ``log π`` is the density of the normalised action (it differs from the env
action's by the constant ``D·log((high − low)/2)``, which no gradient sees).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from trustmarl.offpolicy.functional import gumbel_softmax
from trustmarl.offpolicy.networks import NEG_INF

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SAC's clip of the policy's log standard deviation


def tanh_log_det(u: jax.Array) -> jax.Array:
    """``log(1 − tanh(u)²)`` elementwise, as ``2(log 2 − u − softplus(−2u))`` (no ``log 0`` when ``tanh(u)``
    rounds to ±1)."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """``Σ_d log N(u_d; μ_d, σ_d)`` over the last axis."""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z ** 2 - log_std - 0.5 * math.log(2.0 * math.pi), axis=-1)


def squashed_gaussian_log_prob(a: jax.Array, mean: jax.Array, log_std: jax.Array, eps: float = 1e-6) -> jax.Array:
    """``log π(a)`` of a given squashed action ``a ∈ (−1, 1)^D`` (``u = atanh(a)``, ``a`` pulled ``eps``
    inside the box so a stored boundary action stays finite)."""
    u = jnp.arctanh(jnp.clip(a, -1.0 + eps, 1.0 - eps))
    return gaussian_log_prob(u, mean, log_std) - jnp.sum(tanh_log_det(u), axis=-1)


class CategoricalHead:
    """Discrete actions: a categorical policy over ``U`` logits (see the module docstring)."""

    kind = "categorical"
    continuous = False
    reparameterised = False  # the soft actor uses the score function with the counterfactual baseline

    def __init__(self, num_actions: int):
        self.num_actions = num_actions
        self.out_dim = num_actions
        self.action_shape: tuple = ()
        self.action_dtype = jnp.int32

    def mask(self, out, avail):
        """Unavailable actions get logit ``NEG_INF``."""
        return jnp.where(avail, out, NEG_INF)

    def noise(self, key, lead: tuple) -> jax.Array:
        """Gumbel noise ``lead + [U]``: ``argmax(z + g)`` is a sample of ``softmax(z)``."""
        return jax.random.gumbel(key, lead + (self.num_actions,))

    def act(self, out, noise, greedy: bool):
        """``(action [...], log π(action))``: ``argmax(z + g)``, or ``argmax z`` when ``greedy``."""
        action = jnp.argmax(out if greedy else out + noise, axis=-1)
        logp = jnp.take_along_axis(jax.nn.log_softmax(out), action[..., None], -1)[..., 0]
        return action, logp

    def encode(self, action):
        """What a critic reads: the one-hot action ``[..., U]``."""
        return jax.nn.one_hot(action, self.num_actions)

    def sample(self, out, key):
        """``(one-hot a ~ π, log π(a))`` without gradient through ``a`` (soft targets)."""
        action, logp = self.act(out, self.noise(key, out.shape[:-1]), False)
        return self.encode(action), logp

    def greedy(self, out):
        """The encoded most likely action (MADDPG's target and other agents' actions)."""
        return jax.nn.one_hot(jnp.argmax(out, -1), self.num_actions)

    def differentiable(self, out, key):
        """The own action in MADDPG's actor step: a straight-through Gumbel-softmax sample (temperature 1)."""
        return gumbel_softmax(out, key, 1.0, hard=True)

    def regularised(self, raw):
        """What the policy penalty ``policy_reg·E[x²]`` acts on: the raw logits."""
        return raw

    def log_prob(self, out, act):
        """``log π(a)`` of encoded actions ``act`` ``[..., U]``."""
        return jnp.sum(jax.nn.log_softmax(out) * act, -1)

    def entropy(self, out):
        logp = jax.nn.log_softmax(out)
        return -jnp.sum(jnp.exp(logp) * logp, -1)

    def kl(self, p, q):
        """``KL[p ‖ q]`` of two outputs."""
        logp, logq = jax.nn.log_softmax(p), jax.nn.log_softmax(q)
        return jnp.sum(jnp.exp(logp) * (logp - logq), -1)

    def env_action(self, action, low: float, high: float):
        return action


class DeterministicTanhHead:
    """MADDPG's deterministic continuous actor ``a = tanh(z)`` with Gaussian exploration noise of std ``sigma``."""

    kind = "deterministic"
    continuous = True
    reparameterised = True

    def __init__(self, action_dim: int, sigma: float):
        self.out_dim = action_dim
        self.action_dim = action_dim
        self.sigma = sigma
        self.action_shape = (action_dim,)
        self.action_dtype = jnp.float32

    def mask(self, out, avail):
        return out  # every continuous action is available

    def noise(self, key, lead: tuple) -> jax.Array:
        return jax.random.normal(key, lead + (self.action_dim,))

    def act(self, out, noise, greedy: bool):
        """``clip(tanh(z) + σξ, −1, 1)`` (``greedy``: ``tanh(z)``); the log-probability is not defined (0)."""
        mean = jnp.tanh(out)
        action = mean if greedy else jnp.clip(mean + self.sigma * noise, -1.0, 1.0)
        return action, jnp.zeros(action.shape[:-1])

    def encode(self, action):
        return action

    def greedy(self, out):
        return jnp.tanh(out)

    def differentiable(self, out, key):
        """The own action in MADDPG's actor step: ``tanh(z)``, with its gradient."""
        return jnp.tanh(out)

    def regularised(self, raw):
        """maddpg-pytorch penalises the continuous actor's tanh output, not the pre-activation."""
        return jnp.tanh(raw)

    def entropy(self, out):
        """No density: NaN (the metric is left empty for this head)."""
        return jnp.full(out.shape[:-1], jnp.nan)

    def kl(self, p, q):
        """KL of the two exploration Gaussians ``N(tanh z, σ²I)`` before the clip: ``‖tanh p − tanh q‖²/(2σ²)``."""
        return jnp.sum((jnp.tanh(p) - jnp.tanh(q)) ** 2, -1) / (2.0 * self.sigma ** 2)

    def env_action(self, action, low: float, high: float):
        return low + (action + 1.0) * (0.5 * (high - low))


class SquashedGaussianHead:
    """The soft actor for continuous actions: a tanh-squashed diagonal Gaussian (see the module docstring)."""

    kind = "squashed_gaussian"
    continuous = True
    reparameterised = True  # the soft actor differentiates Q through a reparameterised sample

    def __init__(self, action_dim: int):
        self.out_dim = 2 * action_dim
        self.action_dim = action_dim
        self.action_shape = (action_dim,)
        self.action_dtype = jnp.float32

    def split(self, out):
        """``(μ, log σ)``, ``log σ`` clipped to ``[LOG_STD_MIN, LOG_STD_MAX]``."""
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def mask(self, out, avail):
        return out

    def noise(self, key, lead: tuple) -> jax.Array:
        return jax.random.normal(key, lead + (self.action_dim,))

    def squash(self, out, noise):
        """``(a = tanh(μ + σξ), log π(a))``, differentiable in ``out`` (the reparameterisation)."""
        mean, log_std = self.split(out)
        u = mean + jnp.exp(log_std) * noise
        return jnp.tanh(u), gaussian_log_prob(u, mean, log_std) - jnp.sum(tanh_log_det(u), -1)

    def act(self, out, noise, greedy: bool):
        """A sample and its log-probability; ``greedy``: ``tanh(μ)`` (the mean policy Li et al. evaluate)."""
        if greedy:
            mean, log_std = self.split(out)
            a = jnp.tanh(mean)
            return a, squashed_gaussian_log_prob(a, mean, log_std)
        return self.squash(out, noise)

    def encode(self, action):
        return action

    def regularised(self, raw):
        """The penalty acts on the raw ``μ ⊕ log σ`` outputs."""
        return raw

    def sample(self, out, key):
        return self.squash(out, self.noise(key, out.shape[:-1]))

    def greedy(self, out):
        return jnp.tanh(self.split(out)[0])

    def log_prob(self, out, act):
        mean, log_std = self.split(out)
        return squashed_gaussian_log_prob(act, mean, log_std)

    def entropy(self, out):
        """Entropy of the Gaussian before the squash, ``Σ_d (log σ_d + ½ log 2πe)`` (the squashed one has no
        closed form; it is lower by ``E[Σ_d −log(1 − tanh(u_d)²)]``)."""
        _, log_std = self.split(out)
        return jnp.sum(log_std + 0.5 * math.log(2.0 * math.pi * math.e), -1)

    def kl(self, p, q):
        """``KL[π_p ‖ π_q]``: the squash is a bijection, so it is the KL of the two diagonal Gaussians,
        ``Σ_d [log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½]``."""
        mp, lp = self.split(p)
        mq, lq = self.split(q)
        return jnp.sum(lq - lp + (jnp.exp(2 * lp) + (mp - mq) ** 2) / (2.0 * jnp.exp(2 * lq)) - 0.5, -1)

    def env_action(self, action, low: float, high: float):
        return low + (action + 1.0) * (0.5 * (high - low))


CONTINUOUS_HEADS = ("deterministic", "squashed_gaussian")


def make_head(discrete: bool, num_actions: int, continuous: str | None, explore_noise: float, algo: str):
    """The head for an env's action space: categorical for discrete actions; for continuous ones the rule's
    ``continuous`` entry (``deterministic`` or ``squashed_gaussian``). A rule without one refuses continuous
    actions with a one-line error."""
    if discrete:
        return CategoricalHead(num_actions)
    if continuous == "deterministic":
        return DeterministicTanhHead(num_actions, explore_noise)
    if continuous == "squashed_gaussian":
        return SquashedGaussianHead(num_actions)
    from trustmarl.config import ConfigError
    from trustmarl.offpolicy.rules import RULES
    able = ", ".join(f"{name} ({rule.continuous})" for name, rule in RULES.items() if rule.continuous)
    raise ConfigError(f"algo={algo} has no continuous-action actor; allowed with continuous actions: {able}")


__all__ = ["CategoricalHead", "DeterministicTanhHead", "SquashedGaussianHead", "make_head", "tanh_log_det",
           "gaussian_log_prob", "squashed_gaussian_log_prob", "CONTINUOUS_HEADS", "LOG_STD_MIN", "LOG_STD_MAX"]
