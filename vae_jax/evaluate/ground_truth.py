"""Evaluation on ground-truth-factor data: disentanglement scores and per-latent factor names."""

import numpy as np

from vae_jax.evaluate import disentanglement, information
from vae_jax.evaluate.inference import Inference


class Representation:
    """A trained model as the metrics' representation_fn: images [B, ...] -> codes [B, d]
    (the posterior mean of a VAE, the flattened code of other models).

    A VAE's also answers `posterior(images)` -> (mean, variance), so the unsupervised scores
    can score the sampled representation z ~ q(z|x) too (see vae_jax.evaluate.codes).
    """

    def __init__(self, inference: Inference):
        self.inference = inference
        if inference.is_vae:
            self.posterior = self._posterior

    def _posterior(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, logvar = self.inference.posterior(images)
        return mean, np.exp(logvar)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        codes = self.inference.latent(images)
        return codes.reshape(len(codes), -1)


def dimension_labels(codes: np.ndarray, factors: np.ndarray, factor_names, num_bins: int = 20) -> list[str]:
    """For each latent dimension, 'factor (MI/H)' of the factor it is most informative about."""
    mi = information.mutual_information_matrix(information.discretize(codes, num_bins), factors)  # [d, k]
    h = np.array([information.entropy(factors[:, j]) for j in range(factors.shape[1])])
    normalized = mi / h
    best = normalized.argmax(1)
    return [f"{factor_names[j]} ({normalized[i, j]:.2f})" for i, j in enumerate(best)]


def evaluate_ground_truth(
    inference: Inference, dataset, metric_names, seed: int, codes: np.ndarray | None = None
) -> tuple[dict, list[str]]:
    """(disentanglement scores, per-dimension factor labels) for a dataset with factors.

    codes: the deterministic codes of dataset.eval_images when the caller has them already
    (the eval pass computes them); else they are encoded here.
    """
    representation = Representation(inference)
    codes = representation(dataset.eval_images) if codes is None else codes.reshape(len(codes), -1)
    labels = dimension_labels(codes, dataset.eval_factors, dataset.ground_truth.factor_names)
    scores = {}
    if metric_names:
        scores = disentanglement.compute_metrics(
            metric_names, dataset.ground_truth, representation, seed=seed
        )
    return scores, labels
