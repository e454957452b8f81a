"""Closed-form baselines run through the same command: PCA and probabilistic PCA.

No optimization: the maximum-likelihood pPCA is fitted on the training set and
results.json reports exact train and test log-likelihoods (nats per example and
bits per dimension), plus reconstructions and samples in images/.
"""

from pathlib import Path

import numpy as np

from vae_jax import data as data_lib
from vae_jax import objectives
from vae_jax.models.ppca import PPCA
from vae_jax.train.validate import ConfigError
from vae_jax.train.workdir import Workdir


def fit_and_evaluate(config, workdir: str | Path) -> dict:
    """Fits pPCA with config.model.latent_dim components; writes the workdir files.

    Args:
      config: a config with model.name='ppca' and an in-memory dataset.
      workdir: where config.json, metrics.jsonl (one eval record at step 0), images/,
        results.json and TensorBoard events go (no checkpoints: nothing is trained).

    Returns:
      The results (also in results.json).
    """
    writer = Workdir(workdir)
    try:
        writer.write_config(config)
        results = _fit(config, writer)
        writer.log(0, "eval", results)
        writer.write_results(results)
    finally:
        writer.close()
    return results


def _fit(config, writer: Workdir) -> dict:
    """Fits and evaluates the pPCA; writes its image grids; returns the results."""
    dataset = data_lib.load_dataset(config)
    if dataset.train_images is None:
        raise ConfigError(f"model.name='ppca' needs an in-memory dataset; {dataset.name} is procedural")
    train = dataset.train_images.reshape(len(dataset.train_images), -1).astype(np.float64)
    test = dataset.eval_images.reshape(len(dataset.eval_images), -1).astype(np.float64)
    model = PPCA.fit(train, config.model.latent_dim)
    dims = train.shape[1]
    train_ll, test_ll = float(model.log_likelihood(train).mean()), float(model.log_likelihood(test).mean())
    results = {
        "train_log_likelihood": train_ll,
        "test_log_likelihood": test_ll,
        "test_nll": -test_ll,
        "bits_per_dim": float(objectives.bits_per_dim(-test_ll, dims)),
        "noise_variance": model.noise_variance,
        "pca_rec_mse": float(
            np.mean((model.pca_project(test) @ model.pca_components + model.mean - test) ** 2)
        ),
        "step": 0,
    }
    shape = dataset.data_shape
    if len(shape) == 3:
        n = min(32, len(test))
        pairs = np.concatenate(
            [test[:n].reshape(-1, 8, *shape), model.reconstruct(test[:n]).reshape(-1, 8, *shape)], 1
        ).reshape(-1, *shape)
        writer.write_grid("reconstructions", 0, pairs, 8)
        samples = model.sample(64, np.random.default_rng(config.seed)).reshape(-1, *shape)
        writer.write_grid("samples", 0, samples, 8)
    return results
