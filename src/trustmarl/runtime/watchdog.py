"""A stall watchdog for the run loop: a jitted call that makes no progress ends the run loudly.

A jitted XLA computation that deadlocks (docs/known-issues.md) never returns and never raises: the
process sits at a few percent CPU forever. :class:`StallWatchdog` turns that into a failure a user can
act on: when the watched block has not finished within ``timeout_s`` seconds, it prints one line naming
what stalled and for how long, then the Python stacks of every thread (``faulthandler``), and exits the
process with :data:`STALL_EXIT_CODE`.

Two mechanisms, because the stalled thread may or may not hold the GIL: a Python timer thread (prints
the explanation, needs the GIL, which JAX releases while it waits on XLA) and, ``grace_s`` later,
``faulthandler.dump_traceback_later(exit=True)``, which runs in C without the GIL as a backstop.
"""
from __future__ import annotations

import faulthandler
import os
import sys
import threading

STALL_EXIT_CODE = 3


def _stop_children():
    """Terminate this process's multiprocessing children (host-path env workers) before exiting, so a stall
    leaves no process behind."""
    try:
        import multiprocessing
        for child in multiprocessing.active_children():
            child.terminate()
    except Exception:  # noqa: BLE001 - exiting anyway
        pass


class StallWatchdog:
    """``with StallWatchdog(600, "chunk of updates 10-20"): run()`` — exit the process if ``run`` stalls.

    ``timeout_s <= 0`` disables it. The block's normal end (or an exception) disarms it.
    """

    def __init__(self, timeout_s: float, what: str, grace_s: float = 15.0, stream=None):
        self.timeout_s = float(timeout_s)
        self.what = what
        self.grace_s = grace_s
        self.stream = stream or sys.stderr
        self._timer: threading.Timer | None = None
        self._backstop = False

    def _fire(self):
        try:
            self.stream.write(
                f"trustmarl: error: stalled: {self.what} made no progress for {self.timeout_s:g} s "
                f"(stall_timeout={self.timeout_s:g}); Python stacks follow. A deadlocked XLA computation looks "
                f"like this (docs/known-issues.md); if the work is just slow, raise stall_timeout.\n")
            self.stream.flush()
            faulthandler.dump_traceback(file=self.stream, all_threads=True)
            self.stream.flush()
        finally:
            _stop_children()
            os._exit(STALL_EXIT_CODE)

    def __enter__(self):
        if self.timeout_s > 0:
            self._timer = threading.Timer(self.timeout_s, self._fire)
            self._timer.daemon = True
            self._timer.start()
            # The C-level backstop needs a real file descriptor; a captured stream (pytest, notebooks) has
            # none, so fall back to the process's original stderr, and to no backstop if that has none.
            for stream in (self.stream, sys.__stderr__):
                try:
                    faulthandler.dump_traceback_later(self.timeout_s + self.grace_s, exit=True, file=stream)
                    self._backstop = True
                    break
                except (ValueError, OSError, AttributeError, TypeError):
                    continue
        return self

    def __exit__(self, *exc):
        if self._timer is not None:
            self._timer.cancel()
            if self._backstop:
                faulthandler.cancel_dump_traceback_later()
            self._timer, self._backstop = None, False
        return False
