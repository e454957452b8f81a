"""Log-likelihood bounds: the importance-weighted bound L_k of Burda et al. 2016, and active units.

A VAE with a standard normal prior is scored from its encoder and decoder (`iwae_bound`);
the others (VampPrior, two stochastic layers) through their `log_weights` method.

L_k(x) = E[log (1/k) sum_i p(x, z_i) / q(z_i | x)], z_i ~ q(z | x); L_1 is the ELBO, L_k rises
with k and reaches log p(x) as k -> infinity. Samples are drawn in chunks inside a
`lax.scan` with a running log-sum-exp, so k = 5000 fits in memory.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import objectives
from vae_jax.evaluate.inference import Inference, map_batches
from vae_jax.objectives import log_normal_diag, log_standard_normal


def iwae_bound(
    log_joint: Callable[[jax.Array], jax.Array], mean: jax.Array, logvar: jax.Array,
    rng: jax.Array, k: int, chunk: int = 100,
) -> jax.Array:  # fmt: skip
    """L_k per example [B] for the posterior N(mean, exp(logvar)) [B, d].

    Args:
      log_joint: z [c, B, d] -> log p(x, z) [c, B] for the batch's x.
      mean, logvar: the diagonal Gaussian proposal q(z | x).
      rng: key for the k samples.
      k: number of importance samples; chunk: samples drawn per scan step (k % chunk == 0).
    """
    chunk = min(chunk, k)

    def draw(key):
        eps = jax.random.normal(key, (chunk, *mean.shape), mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps  # [c, B, d]
        return log_joint(z) - log_normal_diag(z, mean, logvar)  # [c, B]

    return chunked_log_mean_exp(draw, mean.shape[:1], rng, k, chunk)


def chunked_log_mean_exp(draw: Callable, batch_shape, rng: jax.Array, k: int, chunk: int) -> jax.Array:
    """log (1/k) sum_s w_s per example for k log weights drawn `chunk` at a time by draw(key) [c, B].

    A running log-sum-exp in a `lax.scan`, so memory holds one chunk; k % chunk must be 0.
    """
    if k % chunk:
        raise ValueError(f"k={k} must be a multiple of chunk={chunk}")

    def body(carry, key):
        running_max, running_sum = carry
        log_w = draw(key)
        new_max = jnp.maximum(running_max, jnp.max(log_w, axis=0))
        running_sum = running_sum * jnp.exp(running_max - new_max) + jnp.sum(jnp.exp(log_w - new_max), 0)
        return (new_max, running_sum), None

    init = (jnp.full(batch_shape, -jnp.inf), jnp.zeros(batch_shape))
    (m, s), _ = jax.lax.scan(body, init, jax.random.split(rng, k // chunk))
    return m + jnp.log(s) - jnp.log(k)


def model_log_joint(model, variables, x: jax.Array, likelihood: str) -> Callable:
    """z [c, B, d] -> log p(x | z) + log N(z; 0, I) [c, B] for a VAE and a batch x [B, ...]."""
    log_scale = model.apply(variables, method=lambda m: m.likelihood())

    def decode(z):
        return model.apply(variables, z, method=model.decode)

    def log_joint(z):
        return objectives.decoded_log_likelihood(decode, z, x, likelihood, log_scale) + log_standard_normal(z)

    return log_joint


def model_iwae_bound(model, variables, x, likelihood: str, rng, *, k: int, chunk: int) -> jax.Array:
    """L_k per example [B] from the model's own `log_weights` (any prior, any number of layers)."""

    def draw(key):
        terms = model.apply(variables, x, chunk, likelihood, method="log_weights", rngs={"sample": key})
        return terms.log_w

    return chunked_log_mean_exp(draw, x.shape[:1], rng, k, chunk)


def active_units(posterior_means: np.ndarray, threshold: float = 0.01) -> int:
    """Burda et al. 2016: dimensions u with Cov_x(E_q[z_u | x]) > threshold."""
    return int(np.sum(np.var(np.asarray(posterior_means), axis=0) > threshold))


def iwae_per_example(
    model, variables, images: np.ndarray, likelihood: str, k: int, batch_size: int, rng: jax.Array,
    posterior: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:  # fmt: skip
    """L_k per example [N] of a VAE over images.

    posterior: the (mean, logvar) [N, d] of q(z|x) when the caller has them (the eval pass);
    a VAE with a standard normal prior then draws its samples from them without encoding again.
    """
    dims = int(np.prod(images.shape[1:]))
    chunk = max(1, min(k, 2**24 // (batch_size * dims)))
    while k % chunk:
        chunk -= 1
    if model.analytic_kl:
        if posterior is None:
            posterior = Inference(model, variables, likelihood, batch_size).posterior(images)

        def fn(batch, i):
            x, mean, logvar = batch
            return _standard_prior_bound(
                model, variables, x, mean, logvar, jax.random.fold_in(rng, i), likelihood, k, chunk
            )

        return map_batches(fn, (images, *posterior), batch_size)

    def fn(x, i):
        return _own_prior_bound(model, variables, x, jax.random.fold_in(rng, i), likelihood, k, chunk)

    return map_batches(fn, images, batch_size)


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8))
def _standard_prior_bound(model, variables, x, mean, logvar, key, likelihood, k, chunk):
    log_joint = model_log_joint(model, variables, x, likelihood)
    return iwae_bound(log_joint, mean, logvar, key, k, chunk)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _own_prior_bound(model, variables, x, key, likelihood, k, chunk):
    return model_iwae_bound(model, variables, x, likelihood, key, k=k, chunk=chunk)


def summarize_iwae(log_lk: np.ndarray, k: int, dims: int) -> dict:
    """iwae_nll (-L_k, nats per example), iwae_k and bits_per_dim."""
    nll = -float(np.mean(log_lk))
    return {
        "iwae_nll": nll,
        "iwae_k": k,
        "bits_per_dim": float(objectives.bits_per_dim(nll, dims)),
    }
