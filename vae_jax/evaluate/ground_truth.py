"""Evaluation on ground-truth-factor data: disentanglement scores and per-latent factor names."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.evaluate import disentanglement, information
from vae_jax.models import VAE


class PosteriorRepresentation:
    """A VAE's representation: images -> posterior means [B, d]; `posterior(images)` -> (mean, variance).

    The mean is what every metric scores; `posterior` lets the unsupervised scores also
    score the sampled representation z ~ q(z|x) (see vae_jax.evaluate.codes).
    """

    def __init__(self, encode: Callable, batch_size: int):
        self._encode = encode  # images [b, ...] -> (mean, variance), each [b, d]
        self.batch_size = batch_size

    def posterior(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [
            self._encode(jnp.asarray(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return tuple(np.concatenate([np.asarray(p[k]) for p in parts]) for k in (0, 1))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.posterior(images)[0]


def posterior_fn(model, state, batch_size: int = 64) -> PosteriorRepresentation:
    """The Gaussian posterior of a VAE as a representation_fn with `posterior` (mean, variance)."""
    variables = {"params": state.params, **state.model_state}

    @jax.jit
    def encode(variables, x):
        mean, logvar = model.apply(variables, x, method=model.encode)
        return mean, jnp.exp(logvar)

    return PosteriorRepresentation(lambda x: encode(variables, x), batch_size)


def representation_fn(model, state, batch_size: int = 64) -> Callable[[np.ndarray], np.ndarray]:
    """images [B, H, W, C] -> deterministic codes [B, d] (the posterior mean for a VAE).

    For a VAE this is `posterior_fn` (which also answers `posterior`); other models'
    codes are their flattened encoder outputs. Small batches (64 per call) suit a CPU.
    """
    if isinstance(model, VAE):
        return posterior_fn(model, state, batch_size)
    variables = {"params": state.params, **state.model_state}

    @jax.jit
    def encode(variables, x):
        return model.apply(variables, x, method=model.encode).reshape(x.shape[0], -1)

    def fn(images: np.ndarray) -> np.ndarray:
        parts = [
            np.asarray(encode(variables, jnp.asarray(images[i : i + batch_size])))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts)

    return fn


def dimension_labels(codes: np.ndarray, factors: np.ndarray, factor_names, num_bins: int = 20) -> list[str]:
    """For each latent dimension, 'factor (MI/H)' of the factor it is most informative about."""
    mi = information.mutual_information_matrix(information.discretize(codes, num_bins), factors)  # [d, k]
    h = np.array([information.entropy(factors[:, j]) for j in range(factors.shape[1])])
    normalized = mi / h
    best = normalized.argmax(1)
    return [f"{factor_names[j]} ({normalized[i, j]:.2f})" for i, j in enumerate(best)]


def evaluate_ground_truth(model, state, dataset, metric_names, seed: int) -> tuple[dict, list[str]]:
    """(disentanglement scores, per-dimension factor labels) for a dataset with factors."""
    fn = representation_fn(model, state)
    codes = fn(dataset.eval_images)
    labels = dimension_labels(codes, dataset.eval_factors, dataset.ground_truth.factor_names)
    scores = {}
    if metric_names:
        scores = disentanglement.compute_metrics(metric_names, dataset.ground_truth, fn, seed=seed)
    return scores, labels
