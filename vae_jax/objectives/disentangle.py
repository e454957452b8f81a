"""The disentangling objectives of Locatello et al. 2019's study beside beta-VAE: beta-TCVAE,
DIP-VAE-I/II and FactorVAE, as pure functions returning (loss, metrics).

Same reduction convention as `vae_jax.objectives.vae`: per-example sums over data and latent
dimensions, mean over the batch. Every loss here is the negative ELBO (KL weight 1) plus one
regularizer, as in disentanglement_lib's `vae.py`, so `neg_elbo` and `kl` compare across methods.
"""

import jax
import jax.numpy as jnp

from vae_jax.errors import ConfigError
from vae_jax.objectives.densities import log_normal_diag, log_standard_normal, normal_log_density
from vae_jax.objectives.vae import Metrics, vae_loss

TC_ESTIMATORS = ("minibatch", "mws", "mss")


def gaussian_log_density_pairs(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(z_i,d | mean_j,d, exp(logvar_j,d)) for every pair (i, j) of the batch, [B, B, d]."""
    return normal_log_density(z[:, None, :], mean[None, :, :], logvar[None, :, :])


def tc_log_weights(estimator: str, batch_size: int, dataset_size: jax.Array | float = 0.0) -> jax.Array:
    """log w_ij of the estimate q(z_i) ~ sum_j w_ij q(z_i | x_j) from a minibatch, [B, B].

    - 'minibatch': disentanglement_lib's `total_correlation`, w_ij = 1 (no normalization); its
      TC is the M = N form's minus (d - 1) log M, a constant that leaves the gradient unchanged.
    - 'mws': minibatch-weighted sampling (Chen et al. 2018, eq. 7 / App. C.1),
      w_ij = 1 / (N M), as in the authors' code.
    - 'mss': minibatch-stratified sampling (Chen et al. 2018, App. C.2): z_i's own posterior
      carries its exact share 1 / N and the other N - 1 examples of the dataset are estimated by
      the other M - 1 of the batch, w_ij = (N - 1) / (N (M - 1)). This spreads the stratum
      weight evenly over the M - 1 (the paper puts (N - M) / (N M) on one of them); both are
      unbiased for q(z_i), and with M = N the estimate is the exact mixture density.
    """
    m = batch_size
    n = jnp.asarray(dataset_size, jnp.float32)
    if estimator == "minibatch":
        return jnp.zeros((m, m))
    if estimator == "mws":
        return jnp.full((m, m), -jnp.log(n * m))
    if estimator == "mss":
        own, other = -jnp.log(n), jnp.log(n - 1.0) - jnp.log(n * (m - 1))
        return jnp.where(jnp.eye(m, dtype=bool), own, other)
    raise ConfigError(f"loss.tc_estimator={estimator!r} is not known; valid: {list(TC_ESTIMATORS)}")


def kl_decomposition(
    z: jax.Array,
    mean: jax.Array,
    logvar: jax.Array,
    *,
    estimator: str = "minibatch",
    dataset_size: jax.Array | float = 0.0,
) -> Metrics:
    """Chen et al. 2018's split of the sampled KL from one minibatch (eq. 2):

      E[log q(z|x) - log p(z)] = MI(x; z) + TC(z) + sum_j KL(q(z_j) || p(z_j)),
      MI = E[log q(z|x) - log q(z)], TC = E[log q(z) - sum_j log q(z_j)],
      dim_kl = E[sum_j log q(z_j) - log p(z)],

    with log q(z_i) = logsumexp_j(log w_ij + sum_d log q(z_i,d | x_j)) and the marginals
    log q(z_i,d) = logsumexp_j(log w_ij + log q(z_i,d | x_j)) (`tc_log_weights`).

    Args:
      z: samples z_i ~ q(z | x_i), [B, d].
      mean, logvar: the posteriors of the batch, [B, d].
      estimator: 'minibatch' (disentanglement_lib), 'mws' or 'mss' (Chen et al.).
      dataset_size: N, for 'mws' and 'mss'.

    Returns:
      {'tc', 'mi', 'dim_kl'}, scalars. With 'minibatch' the three use the unnormalized weights
      of disentanglement_lib, so `tc` is its value and MI and dim_kl are shifted by constants.
    """
    if z.ndim != 2 or z.shape != mean.shape or mean.shape != logvar.shape:
        raise ValueError(f"z, mean, logvar must be [B, d] alike; got {z.shape}, {mean.shape}, {logvar.shape}")
    log_w = tc_log_weights(estimator, z.shape[0], dataset_size)  # [B, B]
    pairs = gaussian_log_density_pairs(z, mean, logvar)  # [B, B, d]
    log_qz = jax.nn.logsumexp(log_w + jnp.sum(pairs, axis=-1), axis=1)  # [B]
    log_marginals = jnp.sum(jax.nn.logsumexp(log_w[..., None] + pairs, axis=1), axis=-1)  # [B]
    log_q_zx = log_normal_diag(z, mean, logvar)
    log_pz = log_standard_normal(z)
    return {
        "tc": jnp.mean(log_qz - log_marginals),
        "mi": jnp.mean(log_q_zx - log_qz),
        "dim_kl": jnp.mean(log_marginals - log_pz),
    }


def beta_tcvae_loss(
    rec_ll: jax.Array,
    kl: jax.Array,
    z: jax.Array,
    mean: jax.Array,
    logvar: jax.Array,
    *,
    beta: jax.Array | float,
    estimator: str = "minibatch",
    dataset_size: jax.Array | float = 0.0,
) -> tuple[jax.Array, Metrics]:
    """beta-TCVAE (Chen et al. 2018) in disentanglement_lib's form (`BetaTCVAE.regularizer`):

      loss = mean_b[-rec_ll_b + KL_b] + (beta - 1) * TC,

    i.e. the KL split MI + TC + dim_kl with weights (1, beta, 1), the analytic KL standing for
    the sum. TC is estimated on the minibatch by `kl_decomposition` with `estimator`.

    Args:
      rec_ll, kl: per-example reconstruction log-likelihood and KL(q(z|x) || p(z)), [B].
      z, mean, logvar: the sampled codes and the posteriors, [B, d].
      beta: the TC weight; beta = 1 is the VAE.
      estimator, dataset_size: see `kl_decomposition`.

    Returns:
      (loss, metrics) with the VAE's `neg_elbo`, `rec`, `kl` and `tc`, `mi`, `dim_kl`.
    """
    _, metrics = vae_loss(rec_ll, kl)
    parts = kl_decomposition(z, mean, logvar, estimator=estimator, dataset_size=dataset_size)
    loss = metrics["neg_elbo"] + (beta - 1.0) * parts["tc"]
    return loss, {**metrics, **parts, "loss": loss}


def dip_covariance(mean: jax.Array, logvar: jax.Array, dip_type: str) -> jax.Array:
    """The covariance that DIP-VAE (Kumar et al. 2018) pushes to the identity, [d, d].

    I (eq. 6): Cov_p(x)[mu(x)], the covariance of the posterior means over the batch.
    II (eq. 7): Cov_q(z)[z] = E_p(x)[diag(exp(logvar))] + Cov_p(x)[mu(x)], the aggregate posterior's.
    """
    centred = mean - jnp.mean(mean, axis=0)
    cov = centred.T @ centred / mean.shape[0]  # [d, d], the biased (1/B) estimate as in dlib
    if dip_type == "i":
        return cov
    if dip_type == "ii":
        return cov + jnp.diag(jnp.mean(jnp.exp(logvar), axis=0))
    raise ConfigError(f"DIP type {dip_type!r} is not known; valid: 'i', 'ii'")


def dip_penalty(cov: jax.Array, lambda_od: jax.Array | float, lambda_d: jax.Array | float) -> jax.Array:
    """lambda_od * sum_{i != j} Cov_ij^2 + lambda_d * sum_i (Cov_ii - 1)^2 (Kumar et al. 2018, eq. 6)."""
    diag = jnp.diagonal(cov)
    off_diag = cov - jnp.diag(diag)
    return lambda_od * jnp.sum(jnp.square(off_diag)) + lambda_d * jnp.sum(jnp.square(diag - 1.0))


def dip_vae_loss(
    rec_ll: jax.Array,
    kl: jax.Array,
    mean: jax.Array,
    logvar: jax.Array,
    *,
    lambda_od: jax.Array | float,
    lambda_d: jax.Array | float,
    dip_type: str = "i",
) -> tuple[jax.Array, Metrics]:
    """DIP-VAE-I / -II (Kumar et al. 2018; disentanglement_lib's `DIPVAE.regularizer`):

      loss = mean_b[-rec_ll_b + KL_b] + lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2,

    with C = `dip_covariance(mean, logvar, dip_type)` on the minibatch.

    Args:
      rec_ll, kl: [B]; mean, logvar: the posteriors, [B, d].
      lambda_od, lambda_d: the weights; dlib uses lambda_d = 10 lambda_od for I, lambda_od for II.
      dip_type: 'i' or 'ii'.
    """
    _, metrics = vae_loss(rec_ll, kl)
    cov = dip_covariance(mean, logvar, dip_type)
    penalty = dip_penalty(cov, lambda_od, lambda_d)
    loss = metrics["neg_elbo"] + penalty
    off_diag = cov - jnp.diag(jnp.diagonal(cov))
    return loss, {
        **metrics,
        "loss": loss,
        "dip_penalty": penalty,
        "cov_off_diag_sq": jnp.sum(jnp.square(off_diag)),
        "cov_diag_sq_err": jnp.sum(jnp.square(jnp.diagonal(cov) - 1.0)),
    }


def permute_dims(z: jax.Array, rng: jax.Array) -> jax.Array:
    """Samples of prod_j q(z_j): each latent dimension permuted independently over the batch
    (Kim & Mnih 2018, Alg. 2; dlib's `shuffle_codes`), [B, d]."""
    keys = jax.random.split(rng, z.shape[1])
    perms = jax.vmap(lambda k: jax.random.permutation(k, z.shape[0]))(keys)  # [d, B]
    return jnp.take_along_axis(z, perms.T, axis=0)


def factor_vae_loss(
    rec_ll: jax.Array, kl: jax.Array, logits: jax.Array, gamma: jax.Array | float
) -> tuple[jax.Array, Metrics]:
    """FactorVAE's VAE loss (Kim & Mnih 2018, eq. 2; dlib's `FactorVAE.model_fn`):

      loss = mean_b[-rec_ll_b + KL_b] + gamma * TC,  TC ~ mean_b[D_0(z_b) - D_1(z_b)],

    the density-ratio estimate log(D(z) / (1 - D(z))) of TC(z) from the discriminator's two
    logits (index 0: 'z ~ q(z)', index 1: 'z ~ prod_j q(z_j)') at the sampled codes z_b.

    Args:
      rec_ll, kl: [B].
      logits: the discriminator's logits at the batch's codes, [B, 2]; gradients flow through
        them to the encoder (the caller keeps the discriminator's parameters fixed here).
      gamma: the TC weight.
    """
    _, metrics = vae_loss(rec_ll, kl)
    tc = jnp.mean(logits[:, 0] - logits[:, 1])
    loss = metrics["neg_elbo"] + gamma * tc
    return loss, {**metrics, "loss": loss, "tc": tc}


def discriminator_loss(logits_q: jax.Array, logits_perm: jax.Array) -> tuple[jax.Array, Metrics]:
    """FactorVAE's discriminator loss (Kim & Mnih 2018, Alg. 2), the negative of dlib's
    `discriminator_loss`:

      loss = -0.5 * mean_b log D_0(z_b) - 0.5 * mean_b log D_1(z~_b),

    with D = softmax(logits), z_b ~ q(z) and z~_b = `permute_dims(z)`, both [B, 2].
    dlib clips the probabilities to [1e-6, 1 - 1e-6]; the log-softmax here needs no clip.
    """
    log_p_q = jax.nn.log_softmax(logits_q)[:, 0]
    log_p_perm = jax.nn.log_softmax(logits_perm)[:, 1]
    loss = -0.5 * (jnp.mean(log_p_q) + jnp.mean(log_p_perm))
    accuracy = 0.5 * (
        jnp.mean((logits_q[:, 0] > logits_q[:, 1]).astype(jnp.float32))
        + jnp.mean((logits_perm[:, 1] > logits_perm[:, 0]).astype(jnp.float32))
    )
    return loss, {"disc_loss": loss, "disc_accuracy": accuracy}
