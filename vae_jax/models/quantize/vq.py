"""Vector quantizer of VQ-VAE (van den Oord et al. 2017), with an optional EMA codebook.

The codebook is K x D. Each D-vector of the encoder output goes to its nearest
codeword (squared Euclidean distance); the gradient reaches the encoder by the
`estimator`: straight-through (the paper) or the rotation trick (Fifty et al.
2024), with the same forward value (`estimators`).
With `ema=True` the codebook is not a parameter but the ratio of exponential
moving averages of the summed assigned encodings and of the (Laplace-smoothed)
cluster sizes (Appendix A.1 of the paper), updated only when `train=True`.
Dead-code restart (Dhariwal et al. 2020, Jukebox) re-seeds every code whose EMA
cluster size has fallen below `restart_threshold` with a randomly chosen
encoding of the current batch and resets that code's EMA statistics.

Options of the modern quantizers (as in vector-quantize-pytorch):
- `cosine`: codes and inputs are l2-normalised before matching (Yu et al. 2022,
  ViT-VQGAN), so the nearest code is the one of largest cosine similarity.
- `kmeans_iters > 0`: on the first training call the codebook becomes the centres of
  that many Lloyd steps over the batch's encodings (collection 'vq_init' records that
  it happened). A learned codebook keeps its parameter and adds a fixed offset
  (centres - initial parameter), so the optimizer state is untouched.

All statistics (cluster sizes, perplexity, usage, k-means centres) are computed over
the whole global batch: under `jax.jit` with a sharded batch XLA inserts the reductions.
Matching, the codebook, its EMA statistics and k-means are float32 whatever dtype the
encoder computed in (`model.dtype`): the input is cast to float32 first.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models.quantize.estimators import estimate, l2_normalize
from vae_jax.models.quantize.kmeans import kmeans, nearest_codes


class VQOutput(NamedTuple):
    quantized: jax.Array  # [B, ..., W], forward: the code; gradient to z_e by the estimator
    codewords: jax.Array | None  # [B, ..., (N,) D] chosen codewords (gradient to the codebook); None: FSQ
    indices: jax.Array  # [B, ...] int32 code index per latent position ([B, ..., N] for N RVQ levels)
    perplexity: jax.Array  # [], exp(entropy) of code usage over the batch (mean over RVQ levels)
    usage: jax.Array  # [], fraction of the K codes used at least once in the batch
    inputs: jax.Array | None = None  # [B, ..., (N,) D] what codewords approximate; None = z_e
    level_perplexity: jax.Array | None = None  # [N] per residual level (RVQ only)
    level_usage: jax.Array | None = None  # [N]
    counts: jax.Array | None = None  # [K] assignments per code over the batch ([N, K] per RVQ level)


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
    estimator: str = "straight_through"  # 'straight_through' | 'rotation'
    cosine: bool = False
    kmeans_iters: int = 0  # Lloyd steps on the first training batch; 0 = random init

    @property
    def codebook_size(self) -> int:
        return self.num_codes

    def _codebook_variables(self):
        """(codebook [K, D] as used, EMA variables or None); creates them at init."""
        init = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")
        shape = (self.num_codes, self.code_dim)
        if self.kmeans_iters:
            self.variable("vq_init", "done", lambda: jnp.zeros((), jnp.bool_))
        if self.ema:
            codebook_var = self.variable("vq", "codebook", lambda: init(self.make_rng("params"), shape))
            # Each code starts as if assigned once to its initial value, so the ratio is defined.
            ema_count = self.variable("vq", "ema_count", lambda: jnp.ones((self.num_codes,)))
            ema_sum = self.variable("vq", "ema_sum", lambda: jnp.copy(codebook_var.value))
            return codebook_var.value, (codebook_var, ema_count, ema_sum)
        codebook = self.param("codebook", init, shape)
        if self.kmeans_iters:
            codebook = codebook + self.variable("vq_init", "offset", jnp.zeros, shape).value
        return codebook, None

    def _kmeans_init(self, flat_sg, codebook, ema_vars):
        """The codebook after k-means on the first training batch (unchanged afterwards)."""
        if self.is_initializing() or not self.is_mutable_collection("vq_init"):
            return codebook
        done = self.get_variable("vq_init", "done")
        rng = self.make_rng("vq")
        centres = jax.lax.cond(
            done, lambda: codebook,
            lambda: kmeans(flat_sg, self.num_codes, self.kmeans_iters, rng, self.cosine),
        )  # fmt: skip
        if ema_vars is not None:
            codebook_var, ema_count, ema_sum = ema_vars
            ema_sum.value = jnp.where(done, ema_sum.value, centres)
            ema_count.value = jnp.where(done, ema_count.value, 1.0)
            codebook_var.value = centres
        else:
            old = self.get_variable("vq_init", "offset")
            new = jnp.where(done, old, jax.lax.stop_gradient(centres - (codebook - old)))
            self.put_variable("vq_init", "offset", new)
            centres = codebook + jax.lax.stop_gradient(new - old)  # the gradient still reaches the parameter
        self.put_variable("vq_init", "done", jnp.ones((), jnp.bool_))
        return centres

    def _ema_update(self, flat_sg, onehot, counts, ema_vars):
        codebook_var, ema_count, ema_sum = ema_vars
        count = self.decay * ema_count.value + (1 - self.decay) * counts
        summed = self.decay * ema_sum.value + (1 - self.decay) * (onehot.T @ flat_sg)
        if self.restart_threshold > 0:
            dead = count < self.restart_threshold  # [K]
            pick = jax.random.randint(self.make_rng("vq"), (self.num_codes,), 0, flat_sg.shape[0])
            summed = jnp.where(dead[:, None], flat_sg[pick], summed)
            count = jnp.where(dead, 1.0, count)
        n = jnp.sum(count)
        smoothed = (count + self.epsilon) / (n + self.num_codes * self.epsilon) * n
        ema_count.value = count
        ema_sum.value = summed
        codebook_var.value = summed / smoothed[:, None]

    @nn.compact
    def __call__(self, z_e: jax.Array, train: bool = False) -> VQOutput:
        if z_e.shape[-1] != self.code_dim:
            raise ValueError(f"encoder output has {z_e.shape[-1]} channels, codebook has {self.code_dim}")
        codebook, ema_vars = self._codebook_variables()
        z_e = z_e.astype(jnp.float32)  # float32 matching and statistics, whatever the encoder's dtype
        z = l2_normalize(z_e) if self.cosine else z_e
        flat = z.reshape(-1, self.code_dim)  # [N, D]
        flat_sg = jax.lax.stop_gradient(flat)
        if self.kmeans_iters:
            codebook = self._kmeans_init(flat_sg, codebook, ema_vars) if train else codebook
        if self.cosine:
            codebook = l2_normalize(codebook)
        indices = nearest_codes(flat_sg, jax.lax.stop_gradient(codebook))
        onehot = jax.nn.one_hot(indices, self.num_codes, dtype=flat.dtype)  # [N, K]
        counts = jnp.sum(onehot, axis=0)  # [K]
        perplexity, usage = usage_statistics(counts)
        codewords = jnp.take(codebook, indices, axis=0).reshape(z.shape)

        if self.ema and train and not self.is_initializing():
            self._ema_update(flat_sg, onehot, counts, ema_vars)

        quantized = estimate(self.estimator, z, codewords)
        indices = indices.reshape(z.shape[:-1])
        return VQOutput(quantized, codewords, indices, perplexity, usage, z, counts=counts)

    def lookup(self, indices: jax.Array) -> jax.Array:
        """Codewords [..., D] of code indices [...] (e.g. sampled from a prior)."""
        if self.ema:
            codebook = self.get_variable("vq", "codebook")
        else:
            codebook = self.get_variable("params", "codebook")
            if self.kmeans_iters:
                codebook = codebook + self.get_variable("vq_init", "offset")
        codebook = l2_normalize(codebook) if self.cosine else codebook
        return jnp.take(codebook, indices, axis=0)
