"""Residual vector quantization (Zeghidour et al. 2021, SoundStream, Sec. 3.2 and Alg. 1).

Level 1 quantizes z, level n quantizes the residual r_n = r_{n-1} - q_{n-1} (r_1 = z)
with its own codebook (a `VectorQuantizer`, so optionally EMA, cosine, k-means init and
dead-code restart), and the output is sum_n q_n. The residual chain carries sg(q_n), so
each level's codebook loss ||sg(r_n) - q_n||^2 (or its EMA update) trains that level alone
and the commitment ||r_n - sg(q_n)||^2 pulls the encoder; both are summed over levels by
stacking (inputs, codewords) on a level axis [B, ..., N, D].

Quantizer dropout (SoundStream): in training each example keeps only its first n_b levels,
n_b uniform in {1..N}, so that a prefix of the levels is a usable coarser code; the dropped
levels add nothing to the output or the losses (their EMA statistics still update).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models.quantize.estimators import estimate
from vae_jax.models.quantize.vq import VectorQuantizer, VQOutput


class ResidualVQ(nn.Module):
    """N residual levels over the last axis of z [B, ..., D]; indices [B, ..., N]."""

    level: VectorQuantizer  # the template; each level is a copy with its own codebook
    num_levels: int = 4
    dropout: bool = False

    @property
    def codebook_size(self) -> int:
        return self.level.num_codes

    @property
    def code_dim(self) -> int:
        return self.level.code_dim

    def setup(self):
        # Each level matches with straight-through; the estimator acts once, on the sum.
        self.levels = [self.level.clone(estimator="straight_through") for _ in range(self.num_levels)]

    def __call__(self, z: jax.Array, train: bool = False) -> VQOutput:
        residual, outs = z, []
        for quantizer in self.levels:
            outs.append(quantizer(residual, train=train))
            residual = residual - jax.lax.stop_gradient(outs[-1].codewords)
        keep = self._keep_mask(z, train)[..., None]  # [B, ..., N, 1]: 1 for the levels an example uses
        inputs = jnp.stack([o.inputs for o in outs], axis=-2) * keep  # [B, ..., N, D]
        codewords = jnp.stack([o.codewords for o in outs], axis=-2) * keep
        total = jnp.sum(codewords, axis=-2)
        level_perplexity = jnp.stack([o.perplexity for o in outs])
        level_usage = jnp.stack([o.usage for o in outs])
        return VQOutput(
            quantized=estimate(self.level.estimator, z, total),
            codewords=codewords, indices=jnp.stack([o.indices for o in outs], axis=-1),
            perplexity=jnp.mean(level_perplexity), usage=jnp.mean(level_usage), inputs=inputs,
            level_perplexity=level_perplexity, level_usage=level_usage,
            counts=jnp.stack([o.counts for o in outs]),
        )  # fmt: skip

    def _keep_mask(self, z: jax.Array, train: bool) -> jax.Array:
        shape = z.shape[:-1]
        if not (self.dropout and train) or self.is_initializing():
            return jnp.ones((*shape, self.num_levels), z.dtype)
        used = jax.random.randint(self.make_rng("vq"), shape[:1], 1, self.num_levels + 1)  # [B]
        keep = jnp.arange(self.num_levels) < used[:, None]  # [B, N]
        keep = keep.reshape(shape[:1] + (1,) * (len(shape) - 1) + (self.num_levels,))
        return jnp.broadcast_to(keep, (*shape, self.num_levels)).astype(z.dtype)

    def lookup(self, indices: jax.Array) -> jax.Array:
        """Sum of the levels' codewords [..., D] for indices [..., N]."""
        return sum(q.lookup(indices[..., n]) for n, q in enumerate(self.levels))
