"""Importance-weighted training objectives: IWAE, MIWAE, PIWAE, CIWAE and the k-sample ELBO.

Every objective reads the log importance weights of S = M * K samples per example,

    log w_{m,k} = log p(x, z_{m,k}) - log q(z_{m,k} | x),   z_{m,k} ~ q(z | x),

as an array [M * K, B] (sample-major; group m holds rows m*K .. m*K + K - 1). Bounds are per
example [B]; losses are the negative bound, mean over the batch, in nats per example, and the
same reduction convention as `vae_jax.objectives` (sums over data and latent dimensions).
The number of samples K and of groups M are structural (static ints: they set array shapes);
CIWAE's beta is numeric (an array, so a sweep vmaps over it).
"""

import jax
import jax.numpy as jnp

from vae_jax.objectives.vae import Metrics

OBJECTIVES = ("elbo", "iwae", "miwae", "piwae", "ciwae")


def _log_mean_exp(log_w: jax.Array, axis: int) -> jax.Array:
    return jax.nn.logsumexp(log_w, axis=axis) - jnp.log(log_w.shape[axis])


def elbo_bound(log_w: jax.Array) -> jax.Array:
    """The ELBO averaged over all samples (Burda et al.'s "VAE, k > 1"): mean_s log w_s, [B]."""
    return jnp.mean(log_w, axis=0)


def iwae_bound(log_w: jax.Array) -> jax.Array:
    """L_S of Burda et al. 2016, eq. 8, over all S samples: log (1/S) sum_s w_s, [B]."""
    return _log_mean_exp(log_w, axis=0)


def miwae_bound(log_w: jax.Array, num_outer: int) -> jax.Array:
    """MIWAE_{M,K} of Rainforth et al. 2018, eq. 7: (1/M) sum_m log (1/K) sum_k w_{m,k}, [B]."""
    groups = log_w.reshape(num_outer, log_w.shape[0] // num_outer, *log_w.shape[1:])  # [M, K, B]
    return jnp.mean(_log_mean_exp(groups, axis=1), axis=0)


def ciwae_bound(log_w: jax.Array, beta: jax.Array) -> jax.Array:
    """CIWAE_beta of Rainforth et al. 2018, eq. 8: beta * ELBO + (1 - beta) * IWAE on the same samples."""
    return beta * elbo_bound(log_w) + (1.0 - beta) * iwae_bound(log_w)


def _metrics(loss: jax.Array, log_w: jax.Array, bound: jax.Array) -> Metrics:
    return {
        "loss": loss,
        "bound": jnp.mean(bound),
        "neg_elbo": -jnp.mean(log_w),
        "iwae_train_nll": -jnp.mean(iwae_bound(log_w)),
    }


def iw_loss(log_w: jax.Array, name: str, num_outer: int = 1, ciwae_beta: jax.Array | float = 0.5):
    """(loss, metrics) of the bound `name` (every objective but PIWAE) on log weights [M * K, B].

    loss = -mean_b bound_b, with bound: `elbo` mean_s log w_s; `iwae` L_{MK}; `miwae` MIWAE_{M,K};
    `ciwae` beta ELBO + (1 - beta) IWAE. With M = K = 1 every bound is the one-sample ELBO.
    """
    if log_w.shape[0] % num_outer:
        raise ValueError(f"log_w has {log_w.shape[0]} samples, not a multiple of num_outer={num_outer}")
    if name == "elbo":
        bound = elbo_bound(log_w)
    elif name == "iwae":
        bound = iwae_bound(log_w)
    elif name == "miwae":
        bound = miwae_bound(log_w, num_outer)
    elif name == "ciwae":
        bound = ciwae_bound(log_w, ciwae_beta)
    else:
        raise ValueError(f"objective {name!r} has no single bound; valid: {list(OBJECTIVES)}")
    loss = -jnp.mean(bound)
    return loss, _metrics(loss, log_w, bound)


def piwae_loss(log_w_generative: jax.Array, log_w_inference: jax.Array, num_outer: int):
    """PIWAE of Rainforth et al. 2018, Sec. 4: IWAE_{MK} trains p_theta, MIWAE_{M,K} trains q_phi.

    loss = -mean_b [ IWAE_{MK}(log_w_generative) + MIWAE_{M,K}(log_w_inference) ]

    Both inputs hold the same values, computed from the same samples; they differ in their
    gradients: `log_w_generative` is computed with the inference network's parameters
    stop-gradiented and `log_w_inference` with the generative model's. One backward pass of
    this loss then gives theta the gradient of -IWAE_{MK} and phi that of -MIWAE_{M,K}.
    The reported `loss` and `bound` are those of the generative target, IWAE_{MK}.
    """
    generative = iwae_bound(log_w_generative)
    inference = miwae_bound(log_w_inference, num_outer)
    surrogate = -jnp.mean(generative) - jnp.mean(inference)
    metrics = _metrics(-jnp.mean(generative), log_w_generative, generative)
    metrics["miwae_bound"] = jnp.mean(inference)
    return surrogate, metrics
