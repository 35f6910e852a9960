"""Shape and value checks shared by the trust-region modules (private)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np


def _assert_min_rank(x: chex.Array, min_rank: int, name: str) -> None:
    if jnp.ndim(x) < min_rank:
        raise ValueError(f"{name} must have rank >= {min_rank}, got shape {jnp.shape(x)}")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_positive(value, name: str, allowed: str) -> None:
    """Raise a one-line ValueError if a concrete ``value`` is not > 0 (tracers pass unchecked)."""
    if not _is_concrete(value):
        return
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number; allowed: {allowed}") from None
    if not (np.all(arr > 0) and np.all(np.isfinite(arr))):
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def _bool_mask(mask: chex.Array | None, shape: tuple[int, ...], name: str) -> chex.Array:
    if mask is None:
        return jnp.ones(shape, dtype=bool)
    if tuple(jnp.shape(mask)) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(jnp.shape(mask))}")
    mask = jnp.asarray(mask)
    return mask if mask.dtype == jnp.bool_ else mask > 0
