"""The three model families: deterministic AE, Gaussian VAE (also beta-VAE) and VQ-VAE.

Each takes any encoder and decoder module (MLP, conv, recurrent) and returns a
named output. `recon` is what the likelihood reads: logits for a Bernoulli
likelihood, the mean for a Gaussian one. `log_scale` is the Gaussian
likelihood's log standard deviation: a learned scalar parameter when
`learn_scale` is set, otherwise the constant `fixed_log_scale`.

Mixed precision (`model.dtype`): the encoder and decoder compute in their own dtype; what
they return is cast to float32 here, at the model's boundary (`float32`), so the posterior,
the decoder's output, the quantizer's matching and every density, loss and metric built from
them are float32 whatever the networks computed in.
"""

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.models.quantize.vq import VQOutput
from vae_jax.objectives import decoded_log_likelihood, log_normal_diag, log_standard_normal, vamp_log_prior

PRIORS = ("standard", "vamp")


def float32(x: jax.Array) -> jax.Array:
    """A network's output in float32, the dtype of everything downstream of the networks."""
    return x.astype(jnp.float32)


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
    # [B] one-sample estimate log q(z|x) - log p(z) of the KL, for priors without a closed form;
    # None: the KL is the analytic KL(N(mean, exp(logvar)) || N(0, I)).
    kl_sample: jax.Array | None = None


class ImportanceTerms(NamedTuple):
    """The three terms of the log importance weights log w = log_px + log_pz - log_qz, each [S, B]."""

    log_px: jax.Array  # log p(x | z_s), summed over data dimensions
    log_pz: jax.Array  # log p(z_s), summed over latent dimensions (and layers)
    log_qz: jax.Array  # log q(z_s | x)

    @property
    def log_w(self) -> jax.Array:
        return self.log_px + self.log_pz - self.log_qz


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
        return float32(self.encoder(x))

    def decode(self, z: jax.Array) -> jax.Array:
        return float32(self.decoder(z))

    def __call__(self, x: jax.Array, train: bool = False) -> AEOutput:
        z = self.encode(x)
        return AEOutput(self.decode(z), z, self.likelihood())


class VAE(nn.Module):
    """Diagonal-Gaussian posterior q(z|x) = N(mean, diag(exp(logvar))), prior N(0, I) or a VampPrior.

    The same class is the beta-VAE: beta lives in the objective. Sampling uses the
    reparameterization z = mean + exp(logvar / 2) * eps with eps from the 'sample' rng.
    With prior='vamp' (Tomczak & Welling 2018) p(z) = (1/K) sum_k q(z | u_k) over K learned
    pseudo-inputs u_k of the data's shape; its KL has no closed form and is estimated by sampling.
    """

    encoder: nn.Module  # must output 2 * latent_dim features
    decoder: nn.Module
    latent_dim: int
    learn_scale: bool = False
    fixed_log_scale: float = 0.0
    prior: str = "standard"  # one of PRIORS
    num_pseudo_inputs: int = 0  # K of the VampPrior
    data_shape: Sequence[int] = ()  # the pseudo-inputs' shape (VampPrior only)

    def setup(self):
        self.likelihood = _Likelihood(self.learn_scale, self.fixed_log_scale)
        if self.prior == "vamp":
            init = nn.initializers.normal(0.01)
            shape = (self.num_pseudo_inputs, *self.data_shape)
            self.pseudo_inputs = self.param("pseudo_inputs", lambda k, s: 0.5 + init(k, s), shape)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, logvar), each [B, latent_dim]."""
        h = float32(self.encoder(x))
        return h[..., : self.latent_dim], h[..., self.latent_dim :]

    def decode(self, z: jax.Array) -> jax.Array:
        return float32(self.decoder(z))

    @property
    def analytic_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) has a closed form (a standard normal prior, one layer)."""
        return self.prior == "standard"

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(z), summed over latent dimensions: z [..., d] -> [...]."""
        if self.prior == "vamp":
            return vamp_log_prior(z, *self.encode(self.pseudo_inputs))
        return log_standard_normal(z)

    def sample_prior(self, num: int) -> jax.Array:
        """num draws z ~ p(z), [num, latent_dim]: N(0, I), or a uniformly chosen q(z | u_k)."""
        rng = self.make_rng("sample")
        eps = jax.random.normal(rng, (num, self.latent_dim))
        if self.prior != "vamp":
            return eps
        mean, logvar = self.encode(self.pseudo_inputs)
        k = jax.random.randint(jax.random.fold_in(rng, 1), (num,), 0, self.num_pseudo_inputs)
        return mean[k] + jnp.exp(0.5 * logvar[k]) * eps

    def __call__(self, x: jax.Array, train: bool = False) -> VAEOutput:
        mean, logvar = self.encode(x)
        eps = jax.random.normal(self.make_rng("sample"), mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps
        kl_sample = None
        if not self.analytic_kl:
            kl_sample = log_normal_diag(z, mean, logvar) - self.log_prior(z)
        return VAEOutput(self.decode(z), mean, logvar, z, self.likelihood(), kl_sample)

    def log_weights(self, x: jax.Array, num_samples: int, likelihood: str) -> ImportanceTerms:
        """The terms of log w_s for num_samples draws z_s ~ q(z|x) per example, each [S, B]."""
        mean, logvar = self.encode(x)
        eps = jax.random.normal(self.make_rng("sample"), (num_samples, *mean.shape), mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps  # [S, B, d]
        log_px = decoded_log_likelihood(self.decode, z, x, likelihood, self.likelihood())
        return ImportanceTerms(log_px, self.log_prior(z), log_normal_diag(z, mean, logvar))


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
        z_e = float32(self.encoder(x))
        if self.latent_shape:
            z_e = z_e.reshape(z_e.shape[0], *self.latent_shape)
        return z_e

    def decode(self, z_q: jax.Array) -> jax.Array:
        return float32(self.decoder(z_q))

    def decode_indices(self, indices: jax.Array) -> jax.Array:
        """Decode a grid of code indices [B, ...] ([B, ..., N] for N residual levels), e.g. prior samples."""
        return self.decode(self.quantizer.lookup(indices))

    def __call__(self, x: jax.Array, train: bool = False) -> VQVAEOutput:
        z_e = self.encode(x)
        vq = self.quantizer(z_e, train=train)
        return VQVAEOutput(self.decode(vq.quantized), z_e, vq, self.likelihood())
