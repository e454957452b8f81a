"""The three model families: deterministic AE, Gaussian VAE (also beta-VAE) and VQ-VAE.

Each takes any encoder and decoder module (MLP, conv, recurrent) and returns a
named output. `recon` is what the likelihood reads: logits for a Bernoulli
likelihood, the mean for a Gaussian one. `log_scale` is the Gaussian
likelihood's log standard deviation: a learned scalar parameter when
`learn_scale` is set, otherwise the constant `fixed_log_scale`.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models.quantizer import VQOutput


class AEOutput(NamedTuple):
    recon: jax.Array  # [B, *data_shape]
    z: jax.Array  # [B, d]
    log_scale: jax.Array  # []


class VAEOutput(NamedTuple):
    recon: jax.Array  # [B, *data_shape], decoded from the sampled z
    mean: jax.Array  # [B, d]
    logvar: jax.Array  # [B, d]
    z: jax.Array  # [B, d], mean + exp(logvar / 2) * eps
    log_scale: jax.Array  # []


class VQVAEOutput(NamedTuple):
    recon: jax.Array  # [B, *data_shape]
    z_e: jax.Array  # [B, ..., D]
    vq: VQOutput
    log_scale: jax.Array  # []


class _Likelihood(nn.Module):
    """Holds the Gaussian likelihood's scale (learned or fixed)."""

    learn_scale: bool = False
    fixed_log_scale: float = 0.0

    @nn.compact
    def __call__(self) -> jax.Array:
        if self.learn_scale:
            return self.param("log_scale", nn.initializers.constant(self.fixed_log_scale), ())
        return jnp.asarray(self.fixed_log_scale, jnp.float32)


class Autoencoder(nn.Module):
    """Deterministic autoencoder: z = enc(x), recon = dec(z)."""

    encoder: nn.Module
    decoder: nn.Module
    learn_scale: bool = False
    fixed_log_scale: float = 0.0

    def setup(self):
        self.likelihood = _Likelihood(self.learn_scale, self.fixed_log_scale)

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def __call__(self, x: jax.Array, train: bool = False) -> AEOutput:
        z = self.encode(x)
        return AEOutput(self.decode(z), z, self.likelihood())


class VAE(nn.Module):
    """Diagonal-Gaussian posterior q(z|x) = N(mean, diag(exp(logvar))), prior N(0, I).

    The same class is the beta-VAE: beta lives in the objective. Sampling uses the
    reparameterization z = mean + exp(logvar / 2) * eps with eps from the 'sample' rng.
    """

    encoder: nn.Module  # must output 2 * latent_dim features
    decoder: nn.Module
    latent_dim: int
    learn_scale: bool = False
    fixed_log_scale: float = 0.0

    def setup(self):
        self.likelihood = _Likelihood(self.learn_scale, self.fixed_log_scale)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, logvar), each [B, latent_dim]."""
        h = self.encoder(x)
        return h[..., : self.latent_dim], h[..., self.latent_dim :]

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def __call__(self, x: jax.Array, train: bool = False) -> VAEOutput:
        mean, logvar = self.encode(x)
        eps = jax.random.normal(self.make_rng("sample"), mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps
        return VAEOutput(self.decode(z), mean, logvar, z, self.likelihood())


class VQVAE(nn.Module):
    """VQ-VAE: z_e = enc(x) [B, ..., D]; quantize; recon = dec(z_q)."""

    encoder: nn.Module  # outputs [B, ..., code_dim]
    decoder: nn.Module
    quantizer: nn.Module  # any of vae_jax.models.quantizers (VQ, FSQ, residual VQ, projected)
    latent_shape: tuple[int, ...] = ()  # reshape of a flat encoder output, e.g. (num_latents, D)
    learn_scale: bool = False
    fixed_log_scale: float = 0.0

    def setup(self):
        self.likelihood = _Likelihood(self.learn_scale, self.fixed_log_scale)

    def encode(self, x: jax.Array) -> jax.Array:
        z_e = self.encoder(x)
        if self.latent_shape:
            z_e = z_e.reshape(z_e.shape[0], *self.latent_shape)
        return z_e

    def decode(self, z_q: jax.Array) -> jax.Array:
        return self.decoder(z_q)

    def decode_indices(self, indices: jax.Array) -> jax.Array:
        """Decode a grid of code indices [B, ...] ([B, ..., N] for N residual levels), e.g. prior samples."""
        return self.decode(self.quantizer.lookup(indices))

    def __call__(self, x: jax.Array, train: bool = False) -> VQVAEOutput:
        z_e = self.encode(x)
        vq = self.quantizer(z_e, train=train)
        return VQVAEOutput(self.decode(vq.quantized), z_e, vq, self.likelihood())
