"""Atomic checkpoints of a whole train state (any pytree) with orbax.

orbax writes each step into a temporary folder (``<step>.orbax-checkpoint-tmp-*``) and renames it when
complete, so a crash, a kill or a full disk during a write leaves the previous checkpoint loadable; a
failed write removes its temporary folder and raises :class:`~.errors.CheckpointWriteError`, and
:func:`cleanup_tmp` removes what a killed write left behind. Reading goes through orbax only (arrays
from tensorstore, metadata as JSON): nothing in a checkpoint folder is ever unpickled or executed, and a
folder that is not an orbax checkpoint of the expected state gives :class:`~.errors.CheckpointError`.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import time
from pathlib import Path

import jax

from trustmarl.runtime import faults
from trustmarl.runtime.errors import CheckpointError, CheckpointWriteError

TMP_MARK = ".orbax-checkpoint-tmp"


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dir(run_dir: Path) -> Path:
    return (Path(run_dir) / "checkpoints").absolute()


def _manager(run_dir: Path, create: bool = True):
    import orbax.checkpoint as ocp
    opts = ocp.CheckpointManagerOptions(max_to_keep=2, create=create, enable_async_checkpointing=False)
    return ocp.CheckpointManager(_dir(run_dir), options=opts)


def cleanup_tmp(run_dir: Path) -> list[str]:
    """Remove temporary folders of checkpoint writes that never finished (killed, or a full disk)."""
    root = _dir(run_dir)
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if TMP_MARK in p.name:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
    return removed


@contextlib.contextmanager
def _fault_hooks():
    """Test-only (:mod:`.faults`): kill inside orbax's write, after the temporary folder is created
    (``ckpt_tmp``) or when everything is written but not yet renamed (``ckpt_commit``)."""
    if not (faults.armed("ckpt_tmp") or faults.armed("ckpt_commit")):
        yield
        return
    from orbax.checkpoint._src.path import atomicity
    cls = atomicity.AtomicRenameTemporaryPath
    create, finalize = cls.create, cls.finalize

    async def create_then_die(self):
        out = await create(self)
        faults.hit("ckpt_tmp")
        return out

    async def die_then_finalize(self):
        faults.hit("ckpt_commit")
        return await finalize(self)

    cls.create, cls.finalize = create_then_die, die_then_finalize
    try:
        yield
    finally:
        cls.create, cls.finalize = create, finalize


@contextlib.contextmanager
def _quiet(buffer):
    """orbax's worker threads log a failed write (absl ERROR lines, asyncio tracebacks) before it raises;
    :class:`CheckpointWriteError` reports it in one line, so their output is kept out of the console."""
    import logging
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        absl.setLevel(level)


def _cause(err: BaseException) -> str:
    text = " ".join(str(err).split())
    for short in ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded"):
        if short in text:
            return f"{short} ({type(err).__name__})"
    return f"{type(err).__name__}: {_one_line(err)}"


def save_checkpoint(run_dir: Path, state, update: int):
    """Save ``state`` as step ``update`` (atomic: temporary folder, then rename). On failure the temporary
    folder is removed and :class:`CheckpointWriteError` names the update, the cause and the checkpoint that
    is still there."""
    import orbax.checkpoint as ocp
    host_state = jax.device_get(state)
    failure = None
    with _quiet(io.StringIO()):
        try:
            with _fault_hooks(), _manager(run_dir) as mngr:
                mngr.save(update, args=ocp.args.StandardSave(host_state))
                mngr.wait_until_finished()
        except Exception as err:  # noqa: BLE001 - any failure of the write is reported the same way
            failure = err
            time.sleep(1.0)  # orbax's threads finish failing (and logging) while their output is discarded
    if failure is not None:
        err = failure
        cleanup_tmp(run_dir)
        try:
            previous = latest_checkpoint(run_dir)
        except Exception:  # noqa: BLE001
            previous = None
        kept = (f"the previous checkpoint (update {previous}) is intact" if previous is not None
                else "no earlier checkpoint exists")
        raise CheckpointWriteError(
            f"could not write the checkpoint of update {update} to {_dir(run_dir)}: {_cause(err)}; {kept}; free "
            f"space (or fix the folder), then `trustmarl resume "
            f"{Path(run_dir)}`") from err


def latest_checkpoint(run_dir: Path) -> int | None:
    """The newest complete checkpoint's update, or None (no folder, or no finished write in it)."""
    root = _dir(run_dir)
    if not root.is_dir():
        return None
    steps = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    if not steps:
        return None
    try:
        with _manager(run_dir, create=False) as mngr:
            return mngr.latest_step()
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{root} cannot be read as orbax checkpoints: {type(err).__name__}: "
                              f"{_one_line(err)}") from None


def restore_checkpoint(run_dir: Path, target, step: int | None = None):
    """Restore into the structure of ``target`` (a freshly initialised state of the same config).

    :class:`CheckpointError` (one line) when there is no checkpoint, or it cannot be read as an orbax
    checkpoint of ``target``'s structure, shapes and dtypes (a corrupt folder, a foreign file, a
    checkpoint of another config)."""
    import orbax.checkpoint as ocp
    root = _dir(run_dir)
    step = latest_checkpoint(run_dir) if step is None else step
    if step is None:
        raise CheckpointError(f"no checkpoint in {root}; allowed: a run folder whose training wrote at least one "
                              f"checkpoint (checkpoint_every)")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
        with _manager(run_dir, create=False) as mngr:
            restored = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {step} in {root} cannot be read as this run's train state: "
                              f"{type(err).__name__}: {_one_line(err)}") from None
    want = jax.tree.structure(target)
    if jax.tree.structure(restored) != want:
        raise CheckpointError(f"checkpoint {step} in {root} does not hold this run's train state "
                              f"(another config or algorithm?)")
    for got, ref in zip(jax.tree.leaves(restored), jax.tree.leaves(target)):
        if getattr(got, "shape", None) != getattr(ref, "shape", None) or getattr(got, "dtype", None) != getattr(
                ref, "dtype", None):
            raise CheckpointError(f"checkpoint {step} in {root} holds an array of shape {getattr(got, 'shape', '?')} "
                                  f"where this run's state has {getattr(ref, 'shape', '?')} (another config?)")
    return restored
