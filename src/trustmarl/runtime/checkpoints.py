"""Atomic checkpoints of a whole train state (any pytree) with orbax.

orbax writes each step into a temporary folder and renames it when complete, so a crash during a write
leaves the previous checkpoint loadable.
"""
from __future__ import annotations

from pathlib import Path

import jax


def _manager(run_dir: Path):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager((Path(run_dir) / "checkpoints").absolute(), options=opts)


def save_checkpoint(run_dir: Path, state, update: int):
    """Save ``state`` as step ``update`` (atomic: temporary folder, then rename)."""
    import orbax.checkpoint as ocp
    with _manager(run_dir) as mngr:
        mngr.save(update, args=ocp.args.StandardSave(jax.device_get(state)))
        mngr.wait_until_finished()


def latest_checkpoint(run_dir: Path) -> int | None:
    if not (Path(run_dir) / "checkpoints").exists():
        return None
    with _manager(run_dir) as mngr:
        return mngr.latest_step()


def restore_checkpoint(run_dir: Path, target, step: int | None = None):
    """Restore into the structure of ``target`` (a freshly initialised state of the same config)."""
    import orbax.checkpoint as ocp
    with _manager(run_dir) as mngr:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {Path(run_dir) / 'checkpoints'}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
