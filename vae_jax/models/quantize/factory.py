"""The quantizer of `config.model.vq` (`build_quantizer`), and the projection around it.

Every quantizer maps z [B, ..., W] to a `VQOutput` (`quantized` has z's shape, the decoder
reads it) and has `lookup(indices)` (codes -> decoder input, for prior samples) and
`codebook_size` (the number of distinct indices per position and level):

- kind='vq': `VectorQuantizer` (codebook, optional EMA / cosine / k-means init / restart).
- kind='fsq': `FSQ` over `fsq_levels` (empty: the paper's set for num_codes).
- kind='rvq': `ResidualVQ` of `num_levels` VectorQuantizers, with optional quantizer dropout.

With `encoder_dim` above the code dimension, linear maps W -> D before and D -> W after the
quantizer (`ProjectedQuantizer`; "factorized codes" of Yu et al. 2022) let the codes live in
a low-dimensional space: losses and matching happen there. The projections compute in the
model's `dtype`; their outputs, like every quantizer's, are float32.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from flax.typing import Dtype

from vae_jax.models.quantize.fsq import FSQ, recommended_levels
from vae_jax.models.quantize.residual import ResidualVQ
from vae_jax.models.quantize.vq import VectorQuantizer, VQOutput

KINDS = ("vq", "fsq", "rvq")


class ProjectedQuantizer(nn.Module):
    """Dense(W -> D), quantize, Dense(D -> W)."""

    inner: nn.Module
    width: int
    dtype: Dtype = jnp.float32

    @property
    def codebook_size(self) -> int:
        return self.inner.codebook_size

    def setup(self):
        self.project_in = nn.Dense(self.inner.code_dim, dtype=self.dtype)
        self.project_out = nn.Dense(self.width, dtype=self.dtype)

    def __call__(self, z: jax.Array, train: bool = False) -> VQOutput:
        out = self.inner(self.project_in(z).astype(jnp.float32), train=train)
        return out._replace(quantized=self.project_out(out.quantized).astype(jnp.float32))

    def lookup(self, indices: jax.Array) -> jax.Array:
        return self.project_out(self.inner.lookup(indices)).astype(jnp.float32)


def fsq_levels(vq: ml_collections.ConfigDict) -> tuple[int, ...]:
    """vq.fsq_levels, or the paper's recommended set for vq.num_codes when empty."""
    return tuple(vq.fsq_levels) or recommended_levels(vq.num_codes)


def code_dim(vq: ml_collections.ConfigDict) -> int:
    """The dimension the codes live in: len(levels) for FSQ, vq.code_dim otherwise."""
    return len(fsq_levels(vq)) if vq.kind == "fsq" else vq.code_dim


def encoder_width(vq: ml_collections.ConfigDict) -> int:
    """The channels the encoder emits per latent position: vq.encoder_dim, or the code dimension."""
    return vq.get("encoder_dim", 0) or code_dim(vq)


def build_quantizer(vq: ml_collections.ConfigDict, dtype: Dtype = jnp.float32) -> nn.Module:
    """The quantizer of config.model.vq (validated by vae_jax.train.validate); `dtype`: the projections'."""
    kind = vq.get("kind", "vq")
    if kind == "fsq":
        quantizer = FSQ(fsq_levels(vq))
    else:
        level = VectorQuantizer(
            vq.num_codes, vq.code_dim, vq.ema, vq.decay, vq.epsilon, vq.restart_threshold,
            estimator=vq.get("estimator", "straight_through"), cosine=bool(vq.get("cosine", False)),
            kmeans_iters=int(vq.get("kmeans_init", 0)),
        )  # fmt: skip
        quantizer = level if kind == "vq" else ResidualVQ(level, vq.num_levels, bool(vq.dropout))
    width = encoder_width(vq)
    return ProjectedQuantizer(quantizer, width, dtype) if width != code_dim(vq) else quantizer
