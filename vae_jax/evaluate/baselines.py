"""Baseline representations for the disentanglement metrics (Higgins et al. 2017, Fig. 6):
PCA and ICA fitted on pixels, and the raw pixels themselves."""

from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA, FastICA


def _fit_images(data, num_fit: int, rng: np.random.Generator) -> np.ndarray:
    factors = data.sample_factors(num_fit, rng)
    return data.sample_observations_from_factors(factors, rng).reshape(num_fit, -1)


def pca_representation(data, rng, num_components: int = 10, num_fit: int = 10_000) -> Callable:
    """images -> their first num_components principal components (fitted on num_fit samples)."""
    pca = PCA(num_components, random_state=int(rng.integers(2**31))).fit(_fit_images(data, num_fit, rng))
    return lambda images: pca.transform(np.asarray(images).reshape(len(images), -1))


def ica_representation(data, rng, num_components: int = 10, num_fit: int = 10_000) -> Callable:
    """images -> num_components FastICA sources (fitted on num_fit samples)."""
    ica = FastICA(num_components, whiten="unit-variance", max_iter=500, random_state=int(rng.integers(2**31)))
    ica.fit(_fit_images(data, num_fit, rng))
    return lambda images: ica.transform(np.asarray(images).reshape(len(images), -1))


def pixel_representation(images: np.ndarray) -> np.ndarray:
    """The raw pixels, flattened."""
    return np.asarray(images, np.float32).reshape(len(images), -1)
