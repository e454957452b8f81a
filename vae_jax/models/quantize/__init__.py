"""Quantizers of the VQ-VAE, one interface: z [B, ..., W] -> `VQOutput`.

vq          `VectorQuantizer` (learned or EMA codebook, cosine codes, k-means init, dead-code
            restart), `VQOutput`, code usage statistics
fsq         finite scalar quantization (no codebook)
residual    residual VQ over levels of `VectorQuantizer`s, with quantizer dropout
estimators  straight-through and the rotation trick
kmeans      nearest-codeword assignment and Lloyd's k-means
factory     `build_quantizer(config.model.vq)`, the projection to a low-dimensional code space
"""

from vae_jax.models.quantize.estimators import ESTIMATORS
from vae_jax.models.quantize.factory import (
    KINDS,
    ProjectedQuantizer,
    build_quantizer,
    code_dim,
    encoder_width,
)
from vae_jax.models.quantize.fsq import FSQ
from vae_jax.models.quantize.residual import ResidualVQ
from vae_jax.models.quantize.vq import VectorQuantizer, VQOutput

__all__ = [
    "ESTIMATORS",
    "FSQ",
    "KINDS",
    "ProjectedQuantizer",
    "ResidualVQ",
    "VQOutput",
    "VectorQuantizer",
    "build_quantizer",
    "code_dim",
    "encoder_width",
]
