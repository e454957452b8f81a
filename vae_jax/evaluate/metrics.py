"""Evaluation of a trained state on an evaluation set: ELBO terms, VQ code statistics."""

from collections.abc import Callable

import jax
import numpy as np

from vae_jax.evaluate.codebook import codebook_health


def batched(x: np.ndarray, batch_size: int):
    """Yields (padded batch, number of real rows); the last batch is padded by repetition."""
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - real, axis=0)])
        yield chunk, real


def evaluate_per_example(
    eval_step: Callable, state, images: np.ndarray, batch_size: int, rng: jax.Array,
    to_device: Callable = lambda x: x,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Runs eval_step over all images; returns per-example arrays (padding removed)."""
    parts: dict[str, list] = {}
    for i, (chunk, real) in enumerate(batched(images, batch_size)):
        out = jax.device_get(eval_step(state, to_device(chunk), jax.random.fold_in(rng, i)))
        for k, v in out.items():
            parts.setdefault(k, []).append(np.asarray(v)[:real])
    return {k: np.concatenate(v) for k, v in parts.items()}


def summarize(per_example: dict[str, np.ndarray], num_codes: int | None = None) -> dict[str, float]:
    """Means of per-example metrics; perplexity and usage of VQ codes over the whole set."""
    summary = {k: float(np.mean(v)) for k, v in per_example.items() if k not in ("indices", "kl_per_dim")}
    if "indices" in per_example and num_codes:
        summary.update(codebook_health(per_example["indices"], num_codes))
    return summary
