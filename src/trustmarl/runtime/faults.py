"""Test-only fault injection: kill the process with SIGKILL at a named point of the run loop.

``TRUSTMARL_TEST_KILL_AT=<point>:<n>`` (several joined by commas) makes the ``n``-th time this process
reaches ``<point>`` its last: it writes ``trustmarl-test: SIGKILL at <point> #<n>`` to stderr and sends
itself SIGKILL, which nothing can catch. The reliability tests (``tests/reliability``) use it to check that a
run killed anywhere resumes to exactly the result of an uninterrupted run (docs/reliability.md). Unset (the
normal case) every :func:`hit` is one dictionary look-up; nothing else in trustmarl reads the variable.

Points: ``init`` (state built or restored), ``chunk`` (before a chunk runs), ``logged`` (chunk logged, not yet
saved), ``before_save``/``saved`` (around a checkpoint), ``ckpt_tmp`` (inside orbax's write: the temporary
folder exists, arrays not written), ``ckpt_commit`` (inside orbax's write: arrays written, folder not yet
renamed), ``csv_row`` (inside the metrics.csv write, after half a row), ``tb`` (inside the TensorBoard write),
``truncate`` (resume: truncated CSV written, not yet renamed), ``tb_compact`` (resume: compacted event file
written, old ones not yet removed), ``config`` (config.json.tmp written, not yet renamed), ``summary``
(before summary.json).
"""
from __future__ import annotations

import os
import signal
import sys

ENV_VAR = "TRUSTMARL_TEST_KILL_AT"


def _parse(spec: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, n = part.partition(":")
        out[name] = int(n or 1)
    return out


TARGETS: dict[str, int] = _parse(os.environ.get(ENV_VAR, ""))
_COUNTS: dict[str, int] = {}


def armed(point: str) -> bool:
    """Whether ``point`` is a kill target of this process (cheap; False unless the test variable is set)."""
    return point in TARGETS


def hit(point: str, before=None) -> None:
    """Count a pass through ``point``; on the chosen pass call ``before()`` (e.g. write half a row) and die."""
    if point not in TARGETS:
        return
    _COUNTS[point] = _COUNTS.get(point, 0) + 1
    if _COUNTS[point] == TARGETS[point]:
        if before is not None:
            before()
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.write(2, f"trustmarl-test: SIGKILL at {point} #{_COUNTS[point]}\n".encode())  # past any redirect
        os.kill(os.getpid(), signal.SIGKILL)
