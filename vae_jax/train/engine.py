"""The training engine every trainer shares: a `Run` built once, and one step loop.

A `Run` holds what a training run is made of (config, workdir writer, dataset, model,
device mesh, checkpoint manager). `train_loop` drives any pure step
`(state, batch) -> (state, metrics)` over a stream of batches: the progress line (steps/s
and ETA), periodic train records, sums of chosen metrics over each epoch
(`Hooks.epoch_sums`), checkpoints, the evaluation hook, SIGINT/SIGTERM (save, then exit
with 128 + signal; across processes all of them at one step, `multihost.StopSignal`) and the
non-finite check. The single run, each program of a
sweep and the VQ prior all train through it; none of them imports another.
"""

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from vae_jax import data as data_lib
from vae_jax.errors import UserError
from vae_jax.models import build_model
from vae_jax.train import checkpoint, multihost, sharding
from vae_jax.train.state import create_train_state
from vae_jax.train.workdir import Workdir


class NonFiniteError(UserError, RuntimeError):
    """The loss or gradient became NaN/inf; the last good checkpoint is kept."""


@dataclasses.dataclass
class Run:
    """The parts of one training program, built once by `build_run`."""

    config: ml_collections.ConfigDict
    writer: Workdir
    dataset: data_lib.Dataset
    model: object  # flax.linen.Module
    mesh: jax.sharding.Mesh
    manager: ocp.CheckpointManager | None = None

    @property
    def steps_per_epoch(self) -> int | None:
        """Steps of one pass over the training set (epochs drop their last partial batch, as
        `pipeline.global_batch_indices` does); None when the source has no epochs."""
        size = None if self.dataset is None else self.dataset.num_train_examples
        return size // self.config.train.batch_size if size else None

    def close(self) -> None:
        """Waits for pending checkpoint writes and closes the manager (the writer is the caller's)."""
        if self.manager is not None:
            self.manager.wait_until_finished()
            self.manager.close()


def build_run(config, writer: Workdir, checkpoint_dir=None, num_sweep: int = 1) -> Run:
    """Loads the data and builds the model and mesh of config; checkpoints under checkpoint_dir."""
    mesh = sharding.make_mesh(num_sweep=num_sweep)
    dataset = data_lib.load_dataset(config, rows=sharding.process_rows(mesh))
    model = build_model(config, dataset.data_shape)
    sharding.check_batch_divides(config.train.batch_size, mesh)
    manager = None
    if checkpoint_dir is not None:
        manager = checkpoint.make_manager(checkpoint_dir, config.train.keep_checkpoints)
    return Run(config, writer, dataset, model, mesh, manager)


def init_state(run: Run):
    """The run's initial train state, replicated on its mesh (seeded by config.seed)."""
    init_rng = jax.random.fold_in(jax.random.key(run.config.seed), 0)
    state = create_train_state(run.model, run.config, run.dataset.data_shape, init_rng)
    return jax.device_put(state, sharding.replicated(run.mesh))


def setup(config: ml_collections.ConfigDict):
    """(dataset, model, mesh, initial state) of config, for notebooks and tools: nothing is written."""
    run = build_run(config, writer=None)
    return run.dataset, run.model, run.mesh, init_state(run)


def resume(run: Run, state):
    """The latest readable checkpoint of the run restored into state's structure, else state."""
    restored = checkpoint.restore_latest(run.manager, state) if run.manager else None
    if restored is None:
        return state
    logging.info("Resumed from step %d in %s", checkpoint.state_step(restored), run.manager.directory)
    return restored


@dataclasses.dataclass
class Hooks:
    """What a trainer adds to the loop.

    log(step, host_metrics): called every train.log_every steps, at the last step and on a signal,
      after the non-finite check.
    evaluate(state): called every eval.every steps (not at the last: the trainer's final
      evaluation follows the loop).
    members: for stacked sweep states, a label per member: a non-finite member is frozen (its
      step leaves its state unchanged) and reported once, instead of stopping the run.
    epoch_sums: names of step metrics (e.g. the VQ code histogram `code_counts`) that the loop
      takes out of every step's metrics and sums over each epoch on the device; at an epoch's
      last step that step is logged, its metrics with `epoch_<name>` (the sums) added. An epoch
      the loop did not see from its first step (a run resumed mid-epoch) is not reported.
    """

    log: Callable[[int, dict], None]
    evaluate: Callable[[object], None] | None = None
    members: list[str] | None = None
    epoch_sums: tuple[str, ...] = ()
    diverged: set[int] = dataclasses.field(default_factory=set)


def check_finite(state, metrics: dict, step: int, hooks: Hooks) -> None:
    """Raises NonFiniteError for a single run's non-finite step; records a sweep's frozen members."""
    finite = np.asarray(metrics["finite"])
    if hooks.members is None:
        if finite >= 1:
            return
        bad = [k for k, v in metrics.items() if np.ndim(v) == 0 and not np.isfinite(v)]
        good_step = int(multihost.to_host(state.step))
        raise NonFiniteError(
            f"non-finite {', '.join(bad) or 'values'} at step {good_step + 1} (checked at step {step}); "
            f"parameters are kept from step {good_step}, the last good checkpoint is untouched. "
            "Lower optim.learning_rate or set optim.grad_clip."
        )
    steps = multihost.to_host(state.step)
    for j in np.flatnonzero(finite < 1):
        if j not in hooks.diverged:
            hooks.diverged.add(int(j))
            label = hooks.members[j]
            logging.warning("Sweep member %s diverged at step %d; it stays frozen.", label, steps[j] + 1)


class _EpochSums:
    """The on-device sums of `Hooks.epoch_sums` over the current epoch (no host transfer per step)."""

    def __init__(self, names: tuple[str, ...], steps_per_epoch: int | None, start: int):
        self.names = names if steps_per_epoch else ()
        self.steps_per_epoch = steps_per_epoch
        self.whole = bool(steps_per_epoch) and start % steps_per_epoch == 0  # seen from its first step
        self.sums = {}

    def add(self, step: int, metrics: dict) -> tuple[dict, bool]:
        """(metrics without the summed names, plus `epoch_<name>` at a whole epoch's last step;
        whether this step ends a whole epoch)."""
        if not self.names:
            return metrics, False
        metrics = dict(metrics)
        batch = {name: metrics.pop(name) for name in self.names if name in metrics}
        self.sums = jax.tree.map(jnp.add, self.sums, batch) if self.sums else batch
        if step % self.steps_per_epoch:
            return metrics, False
        ends = self.whole and bool(self.sums)
        if ends:
            metrics.update({f"epoch_{name}": total for name, total in self.sums.items()})
        self.sums, self.whole = {}, True  # the next epoch starts with the next step
        return metrics, ends


class _Progress:
    """Logs the step, steps/s since the last report and the ETA every `every` steps."""

    def __init__(self, start: int, total: int, every: int):
        self.total, self.every = total, every
        self.step, self.time = start, time.perf_counter()

    def __call__(self, step: int) -> None:
        if step % self.every and step != self.total:
            return
        now = time.perf_counter()
        rate = (step - self.step) / max(now - self.time, 1e-9)
        eta = datetime.timedelta(seconds=round((self.total - step) / rate)) if rate > 0 else "?"
        percent = 100 * step / self.total
        logging.info("step %d/%d (%.0f%%): %.2f steps/s, ETA %s", step, self.total, percent, rate, eta)
        self.step, self.time = step, now


def _save_and_exit(run: Run, state, signum: int, step: int):
    logging.warning("Signal %d: saving step %d and exiting.", signum, step)
    if run.manager is not None:
        checkpoint.save(run.manager, state, force=True)
        run.manager.wait_until_finished()
    raise SystemExit(128 + signum)


def train_loop(run: Run, state, step_fn: Callable, batches: Callable[[int], Iterator], hooks: Hooks):
    """Steps state from its own step to train.num_steps; returns the final state (saved).

    Args:
      run: the run (its config's train/eval cadence, its checkpoint manager).
      state: the (restored) state; `checkpoint.state_step(state)` is where the loop starts.
      step_fn: (state, batch) -> (state, metrics), jitted by the trainer.
      batches: start_step -> iterator of the step's inputs from that step on.
      hooks: the trainer's logging, evaluation and per-epoch sums.
    """
    cfg = run.config.train
    start = checkpoint.state_step(state)
    stream = batches(start)
    progress = _Progress(start, cfg.num_steps, cfg.log_every)
    epochs = _EpochSums(hooks.epoch_sums, run.steps_per_epoch, start)
    try:
        with multihost.StopSignal() as stop:
            for step in range(start + 1, cfg.num_steps + 1):
                state, metrics = step_fn(state, next(stream))
                metrics, epoch_end = epochs.add(step, metrics)
                last = step == cfg.num_steps
                if step % cfg.log_every == 0 or last or stop.requested(step) or epoch_end:
                    host = multihost.to_host(metrics)
                    check_finite(state, host, step, hooks)
                    hooks.log(step, host)
                progress(step)
                if stop.requested(step):
                    _save_and_exit(run, state, stop.requested(step), step)
                if run.manager is not None and step % cfg.checkpoint_every == 0 and not last:
                    checkpoint.save(run.manager, state)
                if hooks.evaluate is not None and step % run.config.eval.every == 0 and not last:
                    hooks.evaluate(state)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    # A state restored at (or past) the last step is already saved: a run stopped during its final
    # evaluation is rerun to evaluate, and saving the same step again would raise.
    if run.manager is not None and start < cfg.num_steps:
        checkpoint.save(run.manager, state, force=True)
        run.manager.wait_until_finished()
    return state
