"""Vector quantizer of VQ-VAE (van den Oord et al. 2017), with an optional EMA codebook.

The codebook is K x D. Each D-vector of the encoder output goes to its nearest
codeword (squared Euclidean distance) and gradients pass straight through.
With `ema=True` the codebook is not a parameter but the ratio of exponential
moving averages of the summed assigned encodings and of the (Laplace-smoothed)
cluster sizes (Appendix A.1 of the paper), updated only when `train=True`.
Dead-code restart (Dhariwal et al. 2020, Jukebox) re-seeds every code whose EMA
cluster size has fallen below `restart_threshold` with a randomly chosen
encoding of the current batch and resets that code's EMA statistics.

All statistics (cluster sizes, perplexity, usage) are computed over the whole
global batch: under `jax.jit` with a sharded batch XLA inserts the reductions.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


class VQOutput(NamedTuple):
    quantized: jax.Array  # [B, ..., D], straight-through: forward z_q, gradient to z_e
    codewords: jax.Array  # [B, ..., D], the chosen codewords (gradient to the codebook)
    indices: jax.Array  # [B, ...], int32 code index per latent position
    perplexity: jax.Array  # [], exp(entropy) of code usage over the batch
    usage: jax.Array  # [], fraction of the K codes used at least once in the batch


def nearest_codes(flat: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest codeword for each row of flat [N, D] given codebook [K, D]."""
    distances = (
        jnp.sum(flat**2, axis=1, keepdims=True)
        - 2.0 * flat @ codebook.T
        + jnp.sum(codebook**2, axis=1)[None, :]
    )  # [N, K]
    return jnp.argmin(distances, axis=1).astype(jnp.int32)


def usage_statistics(counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(perplexity, usage fraction) from per-code assignment counts [K]."""
    probs = counts / jnp.maximum(jnp.sum(counts), 1.0)
    entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)), 0.0))
    return jnp.exp(entropy), jnp.mean(counts > 0)


class VectorQuantizer(nn.Module):
    """Nearest-codeword quantization of the last axis of z_e [B, ..., D]."""

    num_codes: int = 512
    code_dim: int = 64
    ema: bool = False
    decay: float = 0.99
    epsilon: float = 1e-5
    restart_threshold: float = 0.0  # EMA cluster size below which a code is dead; 0 = off

    @nn.compact
    def __call__(self, z_e: jax.Array, train: bool = False) -> VQOutput:
        if z_e.shape[-1] != self.code_dim:
            raise ValueError(f"encoder output has {z_e.shape[-1]} channels, codebook has {self.code_dim}")
        init = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")
        shape = (self.num_codes, self.code_dim)
        if self.ema:
            codebook_var = self.variable("vq", "codebook", lambda: init(self.make_rng("params"), shape))
            # Each code starts as if assigned once to its initial value, so the ratio is defined.
            ema_count = self.variable("vq", "ema_count", lambda: jnp.ones((self.num_codes,)))
            ema_sum = self.variable("vq", "ema_sum", lambda: jnp.copy(codebook_var.value))
            codebook = codebook_var.value
        else:
            codebook = self.param("codebook", init, shape)

        flat = z_e.reshape(-1, self.code_dim)  # [N, D]
        indices = nearest_codes(jax.lax.stop_gradient(flat), jax.lax.stop_gradient(codebook))
        onehot = jax.nn.one_hot(indices, self.num_codes, dtype=flat.dtype)  # [N, K]
        counts = jnp.sum(onehot, axis=0)  # [K]
        perplexity, usage = usage_statistics(counts)
        codewords = jnp.take(codebook, indices, axis=0).reshape(z_e.shape)

        if self.ema and train and not self.is_initializing():
            flat_sg = jax.lax.stop_gradient(flat)
            count = self.decay * ema_count.value + (1 - self.decay) * counts
            summed = self.decay * ema_sum.value + (1 - self.decay) * (onehot.T @ flat_sg)
            if self.restart_threshold > 0:
                dead = count < self.restart_threshold  # [K]
                pick = jax.random.randint(self.make_rng("vq"), (self.num_codes,), 0, flat.shape[0])
                fresh = flat_sg[pick]  # [K, D]
                summed = jnp.where(dead[:, None], fresh, summed)
                count = jnp.where(dead, 1.0, count)
            n = jnp.sum(count)
            smoothed = (count + self.epsilon) / (n + self.num_codes * self.epsilon) * n
            ema_count.value = count
            ema_sum.value = summed
            codebook_var.value = summed / smoothed[:, None]

        quantized = z_e + jax.lax.stop_gradient(codewords - z_e)
        return VQOutput(quantized, codewords, indices.reshape(z_e.shape[:-1]), perplexity, usage)
