"""The run loop's failures, each with a one-line message and the exit code the CLI gives it.

=====================  ====  ===========================================================================
exception              exit  when
=====================  ====  ===========================================================================
(bad input)            2     a config value, CLI word, env name, run folder or file that cannot be used
(stall)                3     a jitted chunk made no progress for ``stall_timeout`` s (:mod:`.watchdog`)
NonFiniteError         4     NaN/inf in env outputs, losses, gradients or parameters (metric ``nonfinite``)
WriteError             5     a checkpoint or a log could not be written, e.g. a full disk
HostEnvError           6     a host-path env worker crashed, hung or returned malformed data
RunInterrupted         130   Ctrl-C (SIGINT; 143 for SIGTERM): the run stopped after writing a checkpoint
=====================  ====  ===========================================================================
"""
from __future__ import annotations

from typing import Optional


class RunError(Exception):
    """A run stopped for a reason the user can act on; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class NonFiniteError(RunError):
    """NaN/inf inside the jitted update: the run stopped at the end of the chunk, nothing of it saved."""

    exit_code = 4

    def __init__(self, message: str, update: int, kinds: list[str], checkpoint: Optional[int]):
        super().__init__(message)
        self.update, self.kinds, self.checkpoint = update, kinds, checkpoint


class WriteError(RunError, OSError):
    """A run folder file could not be written (a full disk, a read-only folder)."""

    exit_code = 5


class CheckpointWriteError(WriteError):
    """A checkpoint could not be written; the previous checkpoint is intact."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read (missing, corrupt, not an orbax checkpoint, or of another config)."""


class RunInterrupted(RunError):
    """SIGINT/SIGTERM: the run stopped cleanly after a checkpoint."""

    def __init__(self, message: str, update: int, signum: int):
        super().__init__(message)
        self.update, self.signum = update, signum
        self.exit_code = 128 + signum
