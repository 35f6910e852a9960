"""The run loop and what it writes: run folders, progress, CSV/TensorBoard logs, atomic checkpoints, resume,
and the stall watchdog. It knows a trainer only through :mod:`trustmarl.trainers.protocol`; JAX envs and
host-path envs go through the same loop (:mod:`.loop`) with different drivers (:mod:`.drivers`)."""
from trustmarl.runtime.loop import load_config, make_run_dir, train

__all__ = ["train", "load_config", "make_run_dir"]
