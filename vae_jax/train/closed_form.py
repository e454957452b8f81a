"""Closed-form baselines run through the same command: PCA and probabilistic PCA.

No optimization: the maximum-likelihood pPCA is fitted on the training set and
results.json reports exact train and test log-likelihoods (nats per example and
bits per dimension), plus reconstructions and samples in images/.
"""

import json
from pathlib import Path

import numpy as np

from vae_jax import data as data_lib
from vae_jax import objectives, viz
from vae_jax.models.ppca import PPCA


def fit_and_evaluate(config, workdir: str | Path) -> dict:
    """Fits pPCA with config.model.latent_dim components; writes the workdir files."""
    workdir = Path(workdir)
    (workdir / "images").mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    dataset = data_lib.load_dataset(config)
    if dataset.train_images is None:
        raise ValueError(f"model.name='ppca' needs an in-memory dataset; {dataset.name} is procedural")
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
        viz.save_grid(workdir / "images" / "reconstructions_0.png", pairs, 8)
        samples = model.sample(64, np.random.default_rng(config.seed)).reshape(-1, *shape)
        viz.save_grid(workdir / "images" / "samples_0.png", samples, 8)
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 0, "split": "eval", **results}) + "\n")
    return results
