"""Orbax checkpointing of the train state, with fall-back past a corrupt latest checkpoint."""

import logging
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from vae_jax.errors import UserError
from vae_jax.train import multihost


class UnreadableCheckpointsError(UserError, ValueError):
    """A workdir has checkpoints, but none can be restored into the run's state."""


class MissingCheckpointError(UserError, FileNotFoundError):
    """A workdir has no checkpoint to evaluate or to build on: train it first."""


def make_manager(workdir: str | Path, keep: int = 3, async_save: bool = True) -> ocp.CheckpointManager:
    """A CheckpointManager on workdir/checkpoints keeping the latest `keep` steps.

    Orbax writes each step into a temporary directory and renames it when
    complete, so a crash mid-save leaves no checkpoint that looks finished.
    Across processes it saves synchronously: Orbax asks JAX's preemption sync point
    with the step it saves, and from its background thread that would report an
    earlier step than the loop's (`multihost.StopSignal`).
    """
    options = ocp.CheckpointManagerOptions(
        preservation_policy=preservation_policy.LatestN(keep),
        enable_async_checkpointing=async_save and jax.process_count() == 1,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager(Path(workdir).absolute() / "checkpoints", options=options)


def state_step(state) -> int:
    """The step of a state; for a sweep's stacked states the furthest member's step."""
    return int(np.max(multihost.to_host(state.step)))


def save(manager: ocp.CheckpointManager, state, force: bool = False) -> None:
    manager.save(state_step(state), args=ocp.args.StandardSave(state), force=force)


def abstract_like(state):
    """Shape/dtype/sharding targets for restore, from a concrete or eval_shape'd state."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        state,
    )


def restore_latest(manager: ocp.CheckpointManager, target):
    """Restores the newest readable checkpoint into `target`'s structure; None if there is none.

    A checkpoint that fails to restore (truncated or corrupt files) is skipped with
    a warning and the previous one is tried; it is never used. If checkpoints exist
    but none restores (all damaged, or written for a different state structure),
    UnreadableCheckpointsError is raised instead of starting over, so a rerun can
    never overwrite or prune what was trained.
    """
    abstract = abstract_like(target)
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # Orbax/TensorStore raise many types for damaged files.
            logging.warning(
                "Checkpoint at step %d is unreadable (%s: %s); falling back to an earlier one.",
                step, type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "",
            )  # fmt: skip
            continue
        if state_step(restored) != step:
            logging.warning("Checkpoint %d holds step %s; skipping it.", step, restored.step)
            continue
        return restored
    if manager.all_steps():
        raise UnreadableCheckpointsError(
            f"none of the checkpoints in {manager.directory} (steps {sorted(manager.all_steps())}) "
            "could be restored into this run's state (damaged files, or saved by a different "
            "model/config or code version; the warnings above say why): use a new --workdir, "
            "or move the checkpoints aside to start over"
        )
    return None
