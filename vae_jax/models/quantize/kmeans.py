"""Nearest-codeword assignment and Lloyd's k-means (the codebook initialisation of `VectorQuantizer`)."""

import jax
import jax.numpy as jnp

from vae_jax.models.quantize.estimators import l2_normalize


def nearest_codes(flat: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest codeword for each row of flat [N, D] given codebook [K, D]."""
    distances = (
        jnp.sum(flat**2, axis=1, keepdims=True)
        - 2.0 * flat @ codebook.T
        + jnp.sum(codebook**2, axis=1)[None, :]
    )  # [N, K]
    return jnp.argmin(distances, axis=1).astype(jnp.int32)


def kmeans(flat: jax.Array, num_codes: int, iterations: int, rng: jax.Array, spherical: bool = False):
    """Lloyd's k-means of rows flat [N, D]: centres [K, D] seeded by K random rows.

    Every statistic is a sum over all N rows, so under `jax.jit` with flat sharded on its
    batch axis the centres are those of the global batch. A cluster left empty keeps its
    centre. `spherical` re-normalises the centres after each step (cosine codes).
    """
    centres = flat[jax.random.randint(rng, (num_codes,), 0, flat.shape[0])]  # [K, D]

    def lloyd(_, centres):
        onehot = jax.nn.one_hot(nearest_codes(flat, centres), num_codes, dtype=flat.dtype)  # [N, K]
        counts = jnp.sum(onehot, axis=0)  # [K]
        means = (onehot.T @ flat) / jnp.maximum(counts, 1.0)[:, None]
        means = l2_normalize(means) if spherical else means
        return jnp.where(counts[:, None] > 0, means, centres)

    return jax.lax.fori_loop(0, iterations, lloyd, centres)
