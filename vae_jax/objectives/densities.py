"""Densities every objective and bound is built from: the diagonal Gaussian, the Bernoulli and
Gaussian likelihoods of the decoder, the KL to a standard normal and the VampPrior.

Reduction convention: a log-likelihood or KL is summed over the data / latent dimensions of an
example; the functions named `*_per_dim` or `normal_log_density` keep the dimensions.
"""

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.errors import ConfigError

LOG_2PI = float(np.log(2.0 * np.pi))
LIKELIHOODS = ("bernoulli", "gaussian")


def sum_except_batch(x: jax.Array) -> jax.Array:
    """[B, ...] -> [B]: the sum over every axis but the first."""
    return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def normal_log_density(x: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(x; mean, exp(logvar)) elementwise (arguments broadcast): the one diagonal-Gaussian
    density of the package."""
    return -0.5 * (LOG_2PI + logvar + jnp.square(x - mean) * jnp.exp(-logvar))


def log_normal_diag(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(logvar))), summed over the last axis: [..., d] -> [...]."""
    return jnp.sum(normal_log_density(z, mean, logvar), axis=-1)


def log_standard_normal(z: jax.Array) -> jax.Array:
    """log N(z; 0, I), summed over the last axis: [..., d] -> [...]."""
    return log_normal_diag(z, 0.0, 0.0)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x | logits) = sum_i x_i log s(l_i) + (1 - x_i) log(1 - s(l_i)).

    Args:
      logits: decoder logits, [B, ...].
      x: targets in [0, 1] (binary, or grey levels for the continuous relaxation), [B, ...].

    Returns:
      Per-example log-likelihood, [B], summed over all data dimensions.
    """
    if logits.shape != x.shape:
        raise ValueError(f"logits shape {logits.shape} != data shape {x.shape}")
    # x log s(l) + (1 - x) log s(-l) = x l - softplus(l): one softplus instead of two log-sigmoids.
    return sum_except_batch(x * logits - jax.nn.softplus(logits))


def gaussian_log_likelihood(mean: jax.Array, x: jax.Array, log_scale: jax.Array) -> jax.Array:
    """log N(x | mean, exp(log_scale)^2), summed over data dimensions.

    Args:
      mean: decoder output, [B, ...].
      x: targets, [B, ...].
      log_scale: log standard deviation, a scalar (fixed or learned) or broadcastable to x.

    Returns:
      Per-example log-likelihood, [B].
    """
    if mean.shape != x.shape:
        raise ValueError(f"mean shape {mean.shape} != data shape {x.shape}")
    return sum_except_batch(normal_log_density(x, mean, 2.0 * jnp.broadcast_to(log_scale, x.shape)))


def reconstruction_log_likelihood(
    decoder_out: jax.Array, x: jax.Array, likelihood: str, log_scale: jax.Array | float = 0.0
) -> jax.Array:
    """The Bernoulli (logits) or Gaussian (mean) likelihood of the decoder's output, per example [B]."""
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(decoder_out, x)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(decoder_out, x, jnp.asarray(log_scale))
    raise ConfigError(f"unknown likelihood {likelihood!r}; valid: {list(LIKELIHOODS)}")


def decoded_log_likelihood(
    decode, z: jax.Array, x: jax.Array, likelihood: str, log_scale: jax.Array | float = 0.0
) -> jax.Array:
    """log p(x | z_s) [S, B] for latents z [S, B, d] and data x [B, ...], decoded as one batch.

    Args:
      decode: latents [S * B, d] -> the decoder's output [S * B, ...] (logits or mean).
    """
    s, b = z.shape[:2]
    out = decode(z.reshape(s * b, z.shape[-1]))
    xs = jnp.broadcast_to(x[None], (s, *x.shape)).reshape(s * b, *x.shape[1:])
    return reconstruction_log_likelihood(out, xs, likelihood, log_scale).reshape(s, b)


def kl_standard_normal_per_dim(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per latent dimension, [B, d].

    KL = 0.5 * (mean^2 + exp(logvar) - 1 - logvar) (Kingma & Welling 2014, App. B).
    """
    return 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)


def vamp_log_prior(z: jax.Array, means: jax.Array, logvars: jax.Array) -> jax.Array:
    """VampPrior density of Tomczak & Welling 2018, eq. 9: log (1/K) sum_k N(z; mu_k, sigma_k^2).

    Args:
      z: latents [..., d].
      means, logvars: the posteriors q(z | u_k) of the K pseudo-inputs u_k, each [K, d].

    Returns:
      log p(z), [...].
    """
    per_component = log_normal_diag(z[..., None, :], means, logvars)  # [..., K]
    return jax.nn.logsumexp(per_component, axis=-1) - jnp.log(means.shape[0])
