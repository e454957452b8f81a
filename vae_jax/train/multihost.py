"""What a multi-process run needs beyond its mesh: host copies of arrays that span processes,
Python values gathered from every process, and a stop that every process takes at one step.

Each function here that gathers is a collective: every process calls it at the same point of
the program (the train loop's steps and the sweep's evaluation are the same on every process).
In a run of one process all of them are the plain local operation.
"""

import json
import logging
import os
import signal

import jax
import numpy as np
from jax.experimental import multihost_utils


def to_host(tree):
    """tree with every array as a NumPy array on this host; arrays sharded over other processes'
    devices (a sweep's members spread over processes) are gathered from them (a collective)."""

    def host(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(host, tree)


def allgather_json(value) -> list:
    """[value of process 0, value of process 1, ...] on every process, for JSON-serializable
    values (a collective; [value] in a run of one process)."""
    if jax.process_count() == 1:
        return [value]
    data = np.frombuffer(json.dumps(value).encode(), np.uint8)
    sizes = multihost_utils.process_allgather(np.asarray(len(data), np.int64))
    padded = np.zeros(int(np.max(sizes)), np.uint8)
    padded[: len(data)] = data
    gathered = multihost_utils.process_allgather(padded)  # [processes, longest]
    return [json.loads(bytes(row[:size])) for row, size in zip(gathered, sizes, strict=True)]


class StopSignal:
    """SIGINT/SIGTERM as a request to save and exit, taken at the same step by every process.

    In one process the handlers set a flag that the loop reads after its step. Across processes
    a signal reaches one process (or several, at different steps), while saving a checkpoint is a
    collective: so SIGTERM is left to JAX's preemption notifier (`jax.distributed` installs it),
    which tells every process, and `jax.experimental.multihost_utils.reached_preemption_sync_point`
    names the first step that all of them can still reach (one past the furthest step any process
    has reported); SIGINT is turned into a SIGTERM to this process. The sync point is asked with
    the train step, as Orbax's CheckpointManager asks it when it saves (`checkpoint.make_manager`
    saves synchronously across processes, so that Orbax never reports an earlier step from its
    background thread). A notice that arrives outside the loop (while a sweep evaluates a
    program, before the first step of a resumed run) names a step that the next loop may never
    reach: it is lost.
    """

    def __init__(self):
        self.signum = None
        self._previous = {}
        self._synced = jax.process_count() > 1
        self._step, self._reached = None, False

    def __enter__(self):
        signals = (signal.SIGINT,) if self._synced else (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        del frame
        self.signum = signum
        if self._synced:  # JAX's notifier hears SIGTERM only
            os.kill(os.getpid(), signal.SIGTERM)

    def requested(self, step: int) -> int | None:
        """After step: the signal to save and exit on now, else None. In one process, any signal
        received so far; across processes, the same answer on all of them (asked once per step)."""
        if not self._synced:
            return self.signum
        if step != self._step:
            self._step = step
            self._reached = multihost_utils.reached_preemption_sync_point(step)
            if self._reached and self.signum is None:
                logging.warning("Another process received a stop signal (a preemption notice).")
        return (self.signum or signal.SIGTERM) if self._reached else None

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
