"""Evaluation of a run's state: eval-set metrics, bounds, scores, pictures, one 'eval' record;
and the per-epoch codebook health of training (train records and results.json)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.evaluate import anomaly, codebook, likelihood, pictures
from vae_jax.evaluate.ground_truth import evaluate_ground_truth
from vae_jax.evaluate.inference import Inference, map_batches
from vae_jax.models import VQVAE
from vae_jax.train import sharding
from vae_jax.train.engine import Run
from vae_jax.train.steps import make_eval_step
from vae_jax.train.workdir import read_metrics


def jitted_eval_step(run: Run):
    """The run's eval step, jitted with the batch sharded on its mesh and the state replicated; in
    a multi-process run, on this process's first device (see `evaluate`)."""
    step = make_eval_step(run.config.loss.likelihood)
    if jax.process_count() > 1:
        return jax.jit(step)
    repl, data_sh = sharding.replicated(run.mesh), sharding.data_sharding(run.mesh)
    return jax.jit(step, in_shardings=(repl, data_sh, repl))


# Per-example outputs of the eval step that are codes, not metrics to average.
_CODES = ("indices", "kl_per_dim", "latent", "logvar")


def summarize(per_example: dict[str, np.ndarray], num_codes: int | None = None) -> dict[str, float]:
    """Means of the per-example metrics; perplexity and usage of VQ codes over the whole set."""
    summary = {k: float(np.mean(v)) for k, v in per_example.items() if k not in _CODES}
    if "indices" in per_example and num_codes:
        summary.update(codebook.codebook_health(per_example["indices"], num_codes))
    return summary


def evaluate(run: Run, state, eval_step, final: bool = False) -> dict:
    """Evaluates state on the eval set, writes pictures and an 'eval' record; returns the summary.

    The eval set is encoded once, by the eval step: its codes serve the likelihood bound, active
    units, the factor labels of the traversals and the 2-D latent map. The importance-weighted
    bound (config.eval.iwae_k samples) and disentanglement metrics (config.eval.disentanglement)
    run at the final evaluation only: they take minutes on a CPU.
    """
    config, dataset = run.config, run.dataset
    # In a multi-process run every process evaluates the whole eval set with its copy of the
    # state, as one process would (only process 0 writes); else the batches are sharded.
    to_device = functools.partial(sharding.global_batch, mesh=run.mesh)
    if jax.process_count() > 1:
        state, to_device = sharding.process_local(state), jnp.asarray
    step = int(jax.device_get(state.step))
    rng = jax.random.fold_in(jax.random.key(config.seed), 2)
    per_example = map_batches(
        lambda batch, i: eval_step(state, batch, jax.random.fold_in(rng, i)),
        dataset.eval_images, config.eval.batch_size, to_device,
    )  # fmt: skip
    num_codes = run.model.quantizer.codebook_size if isinstance(run.model, VQVAE) else None
    summary = summarize(per_example, num_codes)
    kl_per_dim = per_example["kl_per_dim"].mean(0) if "kl_per_dim" in per_example else None
    if kl_per_dim is not None:
        summary["active_dims_kl"] = float(np.sum(kl_per_dim > 0.01))
    inference = Inference(run.model, state.variables, config.loss.likelihood, config.eval.batch_size)
    log_lk = (
        _likelihood_bound(run, inference, per_example, jax.random.fold_in(rng, 3), summary) if final else None
    )
    if config.data.held_out_class >= 0 and dataset.eval_labels is not None:
        summary.update(anomaly.held_out_class_auroc(
            dataset.eval_labels, config.data.held_out_class, per_example, log_lk
        ))  # fmt: skip
    codes, dim_labels = per_example.get("latent"), None
    if dataset.ground_truth is not None:
        names = list(config.eval.disentanglement) if final else []
        seed = _metric_seed(config)
        scores, dim_labels = evaluate_ground_truth(inference, dataset, names, seed, codes=codes)
        summary.update(scores)
    labels = dataset.eval_labels[:2000] if dataset.eval_labels is not None else None
    if run.writer.enabled:  # process 0 of a multi-process run
        grids = pictures.write_pictures(
            inference, dataset.eval_images[:64], run.writer.images_dir, step, jax.random.fold_in(rng, 1),
            kl_per_dim=kl_per_dim, dim_labels=dim_labels, labels=labels,
            codes=None if codes is None else codes[:2000],
        )  # fmt: skip
        run.writer.write_images(step, grids)
    if num_codes and run.writer.enabled:
        codebook.write_usage_histogram(per_example["indices"], num_codes, run.writer.images_dir, step)
    run.writer.log(step, "eval", summary)
    return summary


def _metric_seed(config) -> int:
    """config.eval.metric_seed; config.seed for configs written before the field existed."""
    return int(config.eval.get("metric_seed", config.seed))


def _likelihood_bound(run: Run, inference: Inference, per_example: dict, rng, summary: dict):
    """Adds L_k of a VAE (config.eval.iwae_k samples) and its active units to summary; returns
    log p(x) per example, or None for other models."""
    config = run.config
    if not inference.is_vae or config.eval.iwae_k <= 0:
        return None
    num = config.eval.iwae_num_examples or None
    images = run.dataset.eval_images[:num]
    posterior = (per_example["latent"][:num], per_example["logvar"][:num])
    log_lk = likelihood.iwae_per_example(
        inference.model, inference.variables, images, config.loss.likelihood, config.eval.iwae_k,
        config.eval.batch_size, rng, posterior=posterior,
    )  # fmt: skip
    dims = int(np.prod(images.shape[1:]))
    summary.update(likelihood.summarize_iwae(log_lk, config.eval.iwae_k, dims))
    summary["active_units"] = likelihood.active_units(per_example["latent"])
    return log_lk


EPOCH_SUMS = ("code_counts",)  # the train step's metrics the loop sums per epoch (`engine.Hooks`)


def train_record(metrics: dict) -> dict:
    """A step's host metrics as its train record: an epoch's summed code histogram
    (`epoch_code_counts`, [K] or [levels, K]) becomes `epoch_codebook_usage` and `epoch_perplexity`
    (means over levels, and `*_level<n>` for residual VQ): the usage over the whole epoch."""
    record = dict(metrics)
    counts = record.pop("epoch_code_counts", None)
    if counts is not None:
        record.update(codebook.health_of_counts(counts, prefix="epoch_"))
    return record


def epoch_records(run: Run) -> list[dict]:
    """The train records with an epoch's codebook health in run's metrics.jsonl ([] for models
    without codes, on processes that do not write, or before any record). Read back from the
    file, so a resumed run still reports the epoch it completed before the interruption."""
    writer = run.writer
    if not isinstance(run.model, VQVAE) or writer is None or not writer.enabled:
        return []
    path = writer.path / "metrics.jsonl"
    records = read_metrics(path) if path.exists() else []
    return [r for r in records if r["split"] == "train" and "epoch_perplexity" in r]


def last_epoch_health(records: list[dict], step: int, **match) -> dict:
    """The `epoch_*` fields of the last of `epoch_records` up to step whose fields include match
    (a sweep member's `member`); {} when there is none."""
    for record in reversed(records):
        if record["step"] <= step and all(record.get(k) == v for k, v in match.items()):
            return {k: v for k, v in record.items() if k.startswith("epoch_")}
    return {}


def final_evaluation(run: Run, state, eval_step) -> dict:
    """The final evaluation, with the state's step and the last whole epoch's codebook health,
    written to results.json; returns it."""
    results = evaluate(run, state, eval_step, final=True)
    results["step"] = int(jax.device_get(state.step))
    results.update(last_epoch_health(epoch_records(run), results["step"]))
    run.writer.write_results(results)
    return results
