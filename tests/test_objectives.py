"""Objectives against independent numpy/scipy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from vae_jax import objectives


def test_bernoulli_matches_numpy_and_jit():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 3)).astype(np.float32)
    x = (rng.random((4, 5, 3)) > 0.5).astype(np.float32)
    p = expit(logits)
    ref = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2))
    np.testing.assert_allclose(objectives.bernoulli_log_likelihood(logits, x), ref, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(objectives.bernoulli_log_likelihood)(logits, x), ref, rtol=1e-5)


def test_gaussian_matches_scipy():
    rng = np.random.default_rng(1)
    mean, x = rng.normal(size=(2, 3, 6)).astype(np.float32)
    for log_scale in (0.0, -1.3):
        ref = stats.norm.logpdf(x, mean, np.exp(log_scale)).sum(-1)
        got = jax.jit(objectives.gaussian_log_likelihood)(mean, x, jnp.float32(log_scale))
        np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        objectives.bernoulli_log_likelihood(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="likelihood"):
        objectives.reconstruction_log_likelihood(jnp.zeros((2, 3)), jnp.zeros((2, 3)), "poisson")


def test_kl_matches_monte_carlo():
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(3, 4))
    logvar = rng.normal(size=(3, 4)) * 0.5
    std = np.exp(0.5 * logvar)
    z = mean + std * rng.normal(size=(400_000, 3, 4))
    mc = np.mean(stats.norm.logpdf(z, mean, std) - stats.norm.logpdf(z), axis=0)
    analytic = objectives.kl_standard_normal_per_dim(jnp.asarray(mean), jnp.asarray(logvar))
    np.testing.assert_allclose(analytic, mc, atol=0.01)


def test_kl_of_prior_to_itself_is_zero():
    np.testing.assert_allclose(
        objectives.kl_standard_normal_per_dim(jnp.zeros((2, 5)), jnp.zeros((2, 5))), 0.0
    )


def test_beta_one_is_negative_elbo():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    x = (rng.random((6, 10)) > 0.5).astype(np.float32)
    mean, logvar = rng.normal(size=(2, 6, 3)).astype(np.float32)
    p = expit(logits)
    rec_ll = np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1)
    kl = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1 - logvar, axis=1)
    neg_elbo = np.mean(kl - rec_ll)
    loss, metrics = objectives.vae_loss(
        objectives.bernoulli_log_likelihood(logits, x),
        objectives.kl_standard_normal_per_dim(mean, logvar).sum(-1),
        beta=1.0,
    )
    np.testing.assert_allclose(loss, neg_elbo, rtol=1e-5)
    np.testing.assert_allclose(metrics["neg_elbo"], neg_elbo, rtol=1e-5)
    loss4, metrics4 = objectives.vae_loss(
        objectives.bernoulli_log_likelihood(logits, x),
        objectives.kl_standard_normal_per_dim(mean, logvar).sum(-1),
        beta=4.0,
    )
    np.testing.assert_allclose(loss4, neg_elbo + 3 * np.mean(kl), rtol=1e-5)
    np.testing.assert_allclose(metrics4["neg_elbo"], neg_elbo, rtol=1e-5)  # neg_elbo is beta-free


def test_capacity_annealing():
    c = jax.jit(objectives.capacity)
    np.testing.assert_allclose([c(s, 25.0, 100.0) for s in (0, 50, 100, 500)], [0, 12.5, 25, 25])
    rec_ll, kl = jnp.array([-10.0, -12.0]), jnp.array([3.0, 5.0])
    loss, _ = objectives.vae_loss(rec_ll, kl, beta=4.0, gamma=1000.0, capacity_now=10.0)
    np.testing.assert_allclose(loss, 11.0 + 1000.0 * abs(4.0 - 10.0))


def test_kl_warmup():
    w = jax.jit(objectives.kl_weight)
    np.testing.assert_allclose([w(s, 4.0, 1000.0) for s in (0, 250, 1000, 5000)], [0, 1, 4, 4])
    np.testing.assert_allclose([w(s, 4.0, 0.0) for s in (0, 7)], [4, 4])  # 0 = off


def test_reparameterized_gradient_matches_score_function_and_closed_form():
    """d/dmu E_{z~N(mu, s^2)}[sin z] = cos(mu) exp(-s^2/2); both estimators must agree with it."""
    mu, log_s = 0.7, -0.4
    eps = jax.random.normal(jax.random.key(0), (2_000_000,))

    def reparam(mu, log_s):
        return jnp.mean(jnp.sin(mu + jnp.exp(log_s) * eps))

    g_mu, g_logs = jax.grad(reparam, argnums=(0, 1))(mu, log_s)
    s = np.exp(log_s)
    z = mu + s * np.asarray(eps)
    score_mu = np.mean(np.sin(z) * (z - mu) / s**2)
    score_logs = np.mean(np.sin(z) * ((z - mu) ** 2 / s**2 - 1))
    exact_mu = np.cos(mu) * np.exp(-(s**2) / 2)
    exact_logs = -np.sin(mu) * np.exp(-(s**2) / 2) * s**2
    np.testing.assert_allclose(g_mu, exact_mu, atol=2e-3)
    np.testing.assert_allclose(g_logs, exact_logs, atol=2e-3)
    np.testing.assert_allclose(score_mu, exact_mu, atol=5e-3)
    np.testing.assert_allclose(score_logs, exact_logs, atol=5e-3)


def test_vq_loss_routes_gradients():
    rec_ll = jnp.zeros((2,))
    z_e = jnp.ones((2, 3, 4))
    z_q = jnp.zeros((2, 3, 4))
    g_e = jax.grad(lambda e: objectives.vq_loss(rec_ll, e, z_q, 0.25)[0])(z_e)
    g_q = jax.grad(lambda q: objectives.vq_loss(rec_ll, z_e, q, 0.25)[0])(z_q)
    np.testing.assert_allclose(g_e, 0.25 * 2 * (z_e - z_q) / 2)  # commitment only, mean over B=2
    np.testing.assert_allclose(g_q, 2 * (z_q - z_e) / 2)  # codebook only
    g_q_ema = jax.grad(lambda q: objectives.vq_loss(rec_ll, z_e, q, 0.25, use_codebook_loss=False)[0])(z_q)
    np.testing.assert_allclose(g_q_ema, 0.0)
