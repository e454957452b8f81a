"""train_and_evaluate: data -> sharded jitted steps -> metrics, checkpoints, pictures, results."""

import dataclasses
import functools
import itertools
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from clu import periodic_actions

from vae_jax import data as data_lib
from vae_jax.errors import UserError
from vae_jax.evaluate import anomaly, likelihood, pictures
from vae_jax.evaluate import metrics as eval_metrics
from vae_jax.evaluate.ground_truth import evaluate_ground_truth
from vae_jax.models import VAE, VQVAE, build_model
from vae_jax.objectives_iw import spec_from_config
from vae_jax.train import checkpoint, sharding
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_eval_step, make_train_step
from vae_jax.train.validate import check_resume_compatible, validate_config
from vae_jax.train.workdir import Workdir, check_workdir


class NonFiniteError(UserError, RuntimeError):
    """The loss or gradient became NaN/inf; the last good checkpoint is kept."""


class _StopRequested:
    """Turns SIGINT/SIGTERM into a flag so the loop can save and exit cleanly."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        del frame
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def setup(config: ml_collections.ConfigDict):
    """Dataset, model, mesh and the initial (replicated) train state of a run."""
    dataset = data_lib.load_dataset(config)
    model = build_model(config, dataset.data_shape)
    mesh = sharding.make_mesh()
    sharding.check_batch_divides(config.train.batch_size, mesh)
    init_rng = jax.random.fold_in(jax.random.key(config.seed), 0)
    state = create_train_state(model, config, dataset.data_shape, init_rng)
    state = jax.device_put(state, sharding.replicated(mesh))
    return dataset, model, mesh, state


def evaluate(config, writer: Workdir, dataset, model, state, mesh, eval_step, final=False) -> dict:
    """Evaluates on the eval set, writes pictures, logs an 'eval' record; returns the summary.

    The importance-weighted bound (config.eval.iwae_k samples) and disentanglement metrics
    (config.eval.disentanglement) run at the final evaluation only: they take minutes on a CPU.
    """
    step = int(jax.device_get(state.step))
    rng = jax.random.fold_in(jax.random.key(config.seed), 2)
    per_example = eval_metrics.evaluate_per_example(
        eval_step, state, dataset.eval_images, config.eval.batch_size, rng,
        to_device=lambda x: sharding.global_batch(x, mesh),
    )  # fmt: skip
    num_codes = config.model.vq.num_codes if isinstance(model, VQVAE) else None
    summary = eval_metrics.summarize(per_example, num_codes)
    kl_per_dim = per_example["kl_per_dim"].mean(0) if "kl_per_dim" in per_example else None
    if kl_per_dim is not None:
        summary["active_dims_kl"] = float(np.sum(kl_per_dim > 0.01))
    log_lk = None
    if isinstance(model, VAE) and config.eval.iwae_k > 0 and final:
        images = dataset.eval_images[: config.eval.iwae_num_examples or None]
        log_lk, means = likelihood.iwae_per_example(
            model, state, images, config.loss.likelihood, config.eval.iwae_k,
            config.eval.batch_size, jax.random.fold_in(rng, 3),
        )  # fmt: skip
        dims = int(np.prod(images.shape[1:]))
        summary.update(likelihood.summarize_iwae(log_lk, means, config.eval.iwae_k, dims))
    if config.data.held_out_class >= 0 and dataset.eval_labels is not None:
        summary.update(anomaly.held_out_class_auroc(
            dataset.eval_labels, config.data.held_out_class, per_example, log_lk
        ))  # fmt: skip
    dim_labels = None
    if dataset.ground_truth is not None:
        names = list(config.eval.disentanglement) if final else []
        scores, dim_labels = evaluate_ground_truth(model, state, dataset, names, config.seed)
        summary.update(scores)
    grids = pictures.write_pictures(
        model, state, dataset.eval_images[:64], writer.images_dir, step, config.loss.likelihood,
        jax.random.fold_in(rng, 1), kl_per_dim=kl_per_dim, dim_labels=dim_labels,
        labels=dataset.eval_labels[:2000] if dataset.eval_labels is not None else None,
        codes_x=dataset.eval_images[:2000],
    )  # fmt: skip
    writer.write_images(step, grids)
    writer.log(step, "eval", summary)
    return summary


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path, allow_config_change: bool = False
) -> dict:
    """Trains config's model, resuming from workdir's latest checkpoint; returns results.json.

    Raises ConfigError (before any compilation) for an invalid config, or when workdir
    holds a run with a different config and allow_config_change is False. With
    config.sweep.spec set it trains the sweep (vae_jax.train.sweep) and returns
    {"members": rows of sweep_results.csv}.
    """
    validate_config(config)
    check_workdir(workdir)
    if config.model.name == "ppca":
        from vae_jax.train.closed_form import fit_and_evaluate

        return fit_and_evaluate(config, workdir)
    if config.model.name == "vq_prior":
        from vae_jax.train.prior_training import train_prior

        return train_prior(config, workdir)
    if config.sweep.spec:
        from vae_jax.train.sweep import train_sweep  # sweep builds on this module

        return {"members": train_sweep(config, workdir, allow_config_change)}
    check_resume_compatible(Path(workdir), config, allow_config_change)
    writer = Workdir(workdir)
    writer.write_config(config)
    try:
        return _train(config, writer)
    finally:
        writer.close()


def _train(config: ml_collections.ConfigDict, writer: Workdir) -> dict:
    """The single run of train_and_evaluate, writing through writer; returns results.json."""
    dataset, model, mesh, state = setup(config)
    manager = checkpoint.make_manager(writer.path, config.train.keep_checkpoints)
    restored = checkpoint.restore_latest(manager, state)
    if restored is not None:
        state = restored
        logging.info("Resumed from step %d in %s", int(state.step), writer.path)

    repl, data_sh = sharding.replicated(mesh), sharding.data_sharding(mesh)
    train_step, dataset = jitted_train_step(config, dataset, mesh)
    eval_step = jax.jit(make_eval_step(config.loss.likelihood), in_shardings=(repl, data_sh, repl))
    train_rng = jax.random.fold_in(jax.random.key(config.seed), 1)

    def log(step, metrics):
        _check_finite(state_box[0], metrics, step)
        writer.log(step, "train", metrics)

    def run_eval(state):
        evaluate(config, writer, dataset, model, state, mesh, eval_step)

    state_box = [state]
    try:
        state = run_steps(config, state_box, train_step, train_rng, dataset, mesh, manager, log, run_eval)
        checkpoint.save(manager, state, force=True)
        manager.wait_until_finished()
        results = evaluate(config, writer, dataset, model, state, mesh, eval_step, final=True)
        results["step"] = int(jax.device_get(state.step))
        writer.write_results(results)
        return results
    finally:
        manager.wait_until_finished()
        manager.close()


def jitted_train_step(config, dataset, mesh):
    """The jitted train step, and the dataset whose batches feed it.

    With data.on_device an in-memory training set is copied to the device once, and so
    is each epoch's example order; the step reads its batch's indices out of that order at
    its own state.step and gathers the images itself. Nothing crosses from the host per
    step (the host pipeline's transfer and thread cost ~7% of a 2 ms MLP step on CPU).
    The batches are the same as the host pipeline's (`global_batch_indices`).
    """
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharding(mesh)
    inner = make_train_step(config.loss.likelihood, config.data.binarize, spec_from_config(config.loss))
    if not (config.data.on_device and dataset.train_images is not None):
        step = jax.jit(
            inner, in_shardings=(repl, data_sh, repl), out_shardings=(repl, repl), donate_argnums=0
        )
        return step, dataset
    images = jax.device_put(dataset.train_images, repl)
    num_examples, batch_size = len(dataset.train_images), config.train.batch_size
    steps_per_epoch = num_examples // batch_size
    data_lib.pipeline.global_batch_indices(num_examples, batch_size, config.seed, 0)  # checks the sizes

    def gather_step(state, order, rng, images):
        start = (state.step % steps_per_epoch) * batch_size
        indices = jax.lax.dynamic_slice_in_dim(order, start, batch_size)
        batch = jax.lax.with_sharding_constraint(jnp.take(images, indices, axis=0), data_sh)
        return inner(state, batch, rng)

    jitted = jax.jit(
        gather_step, in_shardings=(repl, repl, repl, repl), out_shardings=(repl, repl), donate_argnums=0
    )

    def epoch_orders(start_step: int) -> Iterator[jax.Array]:
        """Per step, the device copy of its epoch's example order (one transfer per epoch)."""
        epoch, order = None, None
        for step in itertools.count(start_step):
            if step // steps_per_epoch != epoch:
                epoch = step // steps_per_epoch
                perm = data_lib.pipeline.epoch_permutation(num_examples, config.seed, epoch)
                order = jax.device_put(perm.astype(np.int32), repl)
            yield order

    return (lambda state, order, rng: jitted(state, order, rng, images)), dataclasses.replace(
        dataset, device_batches=epoch_orders
    )


def batch_stream(dataset, start_step: int, mesh) -> Iterator:
    """The train step's per-step input from start_step on: device batches from the prefetch
    thread, or, with data.on_device (`jitted_train_step`), what the gathering step reads."""
    if dataset.device_batches is not None:
        return dataset.device_batches(start_step)
    to_device = functools.partial(sharding.global_batch, mesh=mesh)
    return data_lib.pipeline.prefetch(dataset.batch_at, start_step, transform=to_device)


def run_steps(config, state_box, train_step, rng, dataset, mesh, manager, log_fn, eval_fn):
    """The training loop shared by single runs and sweeps; returns the final state.

    state_box[0] always holds the current state (so log_fn can read it); the loop logs
    every train.log_every steps (with clu's progress line: steps/s and ETA), checkpoints every
    train.checkpoint_every, evaluates every eval.every, and on SIGINT/SIGTERM saves and exits
    with 128 + signal.
    """
    num_steps = config.train.num_steps
    start_step = checkpoint.state_step(state_box[0])
    batches = batch_stream(dataset, start_step, mesh)
    progress = periodic_actions.ReportProgress(num_train_steps=num_steps, every_steps=config.train.log_every)
    progress(start_step)  # its first call only starts the clock
    try:
        with _StopRequested() as stop:
            for step in range(start_step + 1, num_steps + 1):
                batch = next(batches)
                state_box[0], metrics = train_step(state_box[0], batch, rng)
                last = step == num_steps
                if step % config.train.log_every == 0 or last or stop.signum:
                    log_fn(step, jax.device_get(metrics))
                progress(step)
                if stop.signum:
                    logging.warning("Signal %d: saving step %d and exiting.", stop.signum, step)
                    checkpoint.save(manager, state_box[0], force=True)
                    manager.wait_until_finished()
                    raise SystemExit(128 + stop.signum)
                if step % config.train.checkpoint_every == 0 and not last:
                    checkpoint.save(manager, state_box[0])
                if step % config.eval.every == 0 and not last:
                    eval_fn(state_box[0])
    finally:
        batches.close()
    return state_box[0]


def _check_finite(state, metrics, step: int) -> None:
    if metrics["finite"] >= 1:
        return
    bad = [k for k, v in metrics.items() if np.ndim(v) == 0 and not np.isfinite(v)]
    good_step = int(jax.device_get(state.step))
    raise NonFiniteError(
        f"non-finite {', '.join(bad) or 'values'} at step {good_step + 1} (checked at step {step}); "
        f"parameters are kept from step {good_step}, the last good checkpoint is untouched. "
        "Lower optim.learning_rate or set optim.grad_clip."
    )


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """--mode=eval: restores the latest checkpoint of workdir and evaluates it."""
    validate_config(config)
    workdir = check_workdir(workdir)
    if not (workdir / "checkpoints").is_dir():
        raise checkpoint.MissingCheckpointError(f"no checkpoints/ in {workdir}: train first (--mode=train)")
    dataset, model, mesh, state = setup(config)
    manager = checkpoint.make_manager(workdir, config.train.keep_checkpoints)
    restored = checkpoint.restore_latest(manager, state)
    manager.close()
    if restored is None:
        raise checkpoint.MissingCheckpointError(
            f"no readable checkpoint in {workdir / 'checkpoints'}; train first"
        )
    repl, data_sh = sharding.replicated(mesh), sharding.data_sharding(mesh)
    eval_step = jax.jit(
        make_eval_step(config.loss.likelihood),
        in_shardings=(repl, data_sh, repl),
    )
    writer = Workdir(workdir)
    try:
        results = evaluate(config, writer, dataset, model, restored, mesh, eval_step, final=True)
        results["step"] = int(jax.device_get(restored.step))
        writer.write_results(results)
    finally:
        writer.close()
    return results


__all__ = ["NonFiniteError", "evaluate_checkpoint", "train_and_evaluate"]
