"""The single run: one model trained by the engine's loop, evaluated, its results written."""

from pathlib import Path

import jax
import ml_collections

from vae_jax.train import checkpoint, engine, evaluation
from vae_jax.train.feed import make_feed
from vae_jax.train.validate import check_resume_compatible
from vae_jax.train.workdir import Workdir


def train(config: ml_collections.ConfigDict, workdir: str | Path, allow_config_change: bool = False) -> dict:
    """Trains config's model, resuming from workdir's latest checkpoint; returns results.json."""
    check_resume_compatible(Path(workdir), config, allow_config_change)
    writer = Workdir(workdir)
    writer.write_config(config)
    run = None
    try:
        run = engine.build_run(config, writer, checkpoint_dir=writer.path)
        writer.write_run_info(data_shape=list(run.dataset.data_shape))
        state = engine.resume(run, engine.init_state(run))
        feed = make_feed(config, run.dataset, run.mesh)
        rng = jax.random.fold_in(jax.random.key(config.seed), 1)
        eval_step = evaluation.jitted_eval_step(run)
        hooks = engine.Hooks(
            log=lambda step, metrics: writer.log(step, "train", evaluation.train_record(metrics)),
            evaluate=lambda s: evaluation.evaluate(run, s, eval_step),
            epoch_sums=evaluation.EPOCH_SUMS,
        )
        state = engine.train_loop(run, state, lambda s, b: feed.step(s, b, rng), feed.batches, hooks)
        return evaluation.final_evaluation(run, state, eval_step)
    finally:
        if run is not None:
            run.close()
        writer.close()


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """--mode=eval: restores the latest checkpoint of workdir and evaluates it."""
    workdir = Path(workdir)
    if not (workdir / "checkpoints").is_dir():
        raise checkpoint.MissingCheckpointError(f"no checkpoints/ in {workdir}: train first (--mode=train)")
    run = engine.build_run(config, writer=None, checkpoint_dir=workdir)
    try:
        restored = checkpoint.restore_latest(run.manager, engine.init_state(run))
        if restored is None:
            raise checkpoint.MissingCheckpointError(
                f"no readable checkpoint in {workdir / 'checkpoints'}; train first"
            )
        run.writer = Workdir(workdir)
        try:
            return evaluation.final_evaluation(run, restored, evaluation.jitted_eval_step(run))
        finally:
            run.writer.close()
    finally:
        run.close()
