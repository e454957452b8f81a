"""beta-TCVAE's TC estimators, DIP-VAE's penalties and FactorVAE's losses against closed forms and
numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from vae_jax.errors import ConfigError
from vae_jax.objectives import disentangle as dis

D, N, VAR = 3, 1024, 0.3
MIX = np.array([[1.0, 0.0, 0.0], [0.9, 0.45, 0.0], [0.5, -0.6, 0.6]])  # posterior means ~ N(0, MIX MIX^T)


def _gaussian_dataset():
    """N posteriors N(mu_n, VAR I), mu_n ~ N(0, C_mu): the aggregate q(z) ~ N(0, C_mu + VAR I)."""
    rng = np.random.default_rng(0)
    means = rng.multivariate_normal(np.zeros(D), MIX @ MIX.T, size=N).astype(np.float32)
    cov = MIX @ MIX.T + VAR * np.eye(D)
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])  # sum_j H(z_j) - H(z)
    mi = 0.5 * (np.linalg.slogdet(cov)[1] - D * np.log(VAR))  # H(z) - H(z | x)
    return means, tc, mi, rng


def _estimate(estimator, means, batch, rng, reps):
    """Mean over `reps` batches (drawn without replacement) of the estimator's TC and MI."""
    fn = jax.jit(lambda z, m, lv: dis.kl_decomposition(z, m, lv, estimator=estimator, dataset_size=N))
    logvar = np.full((batch, D), np.log(VAR), np.float32)
    out = []
    for _ in range(reps):
        m = means[rng.choice(N, batch, replace=False)]
        z = m + np.sqrt(VAR) * rng.standard_normal(m.shape).astype(np.float32)
        parts = fn(z, m, logvar)
        out.append((float(parts["tc"]), float(parts["mi"])))
    return np.mean(out, axis=0)


def test_mss_converges_to_the_closed_form_tc_of_a_correlated_gaussian():
    means, tc, mi, rng = _gaussian_dataset()
    assert tc > 0.3  # a clearly dependent code
    errors = {}
    for batch in (8, 32, N):
        tc_hat, mi_hat = _estimate("mss", means, batch, rng, reps=max(8192 // batch, 4))
        errors[batch] = abs(tc_hat - tc)
    assert errors[8] > errors[32] > errors[N], errors
    assert errors[N] < 0.03 and errors[8] > 0.08, errors  # the small batch is visibly biased
    assert abs(mi_hat - mi) < 0.05, (mi_hat, mi)  # at M = N: the mixture's density exactly


def test_estimators_differ_by_their_normalizations():
    """dlib's unnormalized estimate is the M = N (batch as dataset) one minus (d - 1) log M;
    MWS (Chen et al.'s code) is it plus (d - 1) log(N M). Same gradient for all three."""
    rng = np.random.default_rng(3)
    m = rng.normal(size=(16, 4)).astype(np.float32)
    lv = rng.normal(scale=0.3, size=(16, 4)).astype(np.float32)
    z = (m + np.exp(lv / 2) * rng.normal(size=m.shape)).astype(np.float32)
    tc = {e: float(dis.kl_decomposition(z, m, lv, estimator=e, dataset_size=n)["tc"])
          for e, n in (("minibatch", 0), ("mws", 1000), ("mss", 16))}  # fmt: skip
    np.testing.assert_allclose(tc["mss"], tc["minibatch"] + 3 * np.log(16), rtol=1e-5)
    np.testing.assert_allclose(tc["mws"], tc["minibatch"] + 3 * np.log(16 * 1000), rtol=1e-5)


def test_decomposition_matches_numpy_and_sums_to_the_sampled_kl():
    rng = np.random.default_rng(4)
    m = rng.normal(size=(12, 3)).astype(np.float32)
    lv = rng.normal(scale=0.5, size=(12, 3)).astype(np.float32)
    z = (m + np.exp(lv / 2) * rng.normal(size=m.shape)).astype(np.float32)
    n = 500.0
    log_w = np.full((12, 12), np.log((n - 1) / (n * 11)))
    np.fill_diagonal(log_w, -np.log(n))
    pairs = stats.norm.logpdf(z[:, None, :], m[None], np.exp(lv[None] / 2))  # [i, j, d]
    log_qz = logsumexp(log_w + pairs.sum(-1), axis=1)
    log_marg = logsumexp(log_w[..., None] + pairs, axis=1).sum(-1)
    log_q_zx = stats.norm.logpdf(z, m, np.exp(lv / 2)).sum(-1)
    log_pz = stats.norm.logpdf(z).sum(-1)
    got = jax.jit(lambda *a: dis.kl_decomposition(*a, estimator="mss", dataset_size=n))(z, m, lv)
    np.testing.assert_allclose(got["tc"], np.mean(log_qz - log_marg), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["mi"], np.mean(log_q_zx - log_qz), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["dim_kl"], np.mean(log_marg - log_pz), rtol=1e-4, atol=1e-5)
    total = got["tc"] + got["mi"] + got["dim_kl"]
    np.testing.assert_allclose(total, np.mean(log_q_zx - log_pz), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="tc_estimator='exact'"):
        dis.kl_decomposition(z, m, lv, estimator="exact")
    with pytest.raises(ValueError, match=r"\[B, d\]"):
        dis.kl_decomposition(z[:, :2], m, lv)


def test_beta_tcvae_loss_adds_beta_minus_one_tc_to_the_neg_elbo():
    rng = np.random.default_rng(5)
    m, lv = rng.normal(size=(2, 8, 3)).astype(np.float32)
    z = (m + np.exp(lv / 2) * rng.normal(size=m.shape)).astype(np.float32)
    rec_ll = rng.normal(-100, 5, size=8).astype(np.float32)
    kl = rng.random(8).astype(np.float32)
    loss1, metrics = dis.beta_tcvae_loss(rec_ll, kl, z, m, lv, beta=1.0)
    np.testing.assert_allclose(loss1, np.mean(kl - rec_ll), rtol=1e-6)  # beta = 1: the VAE
    loss6, metrics6 = dis.beta_tcvae_loss(rec_ll, kl, z, m, lv, beta=6.0)
    np.testing.assert_allclose(loss6 - loss1, 5.0 * metrics6["tc"], rtol=1e-5)
    assert metrics6["neg_elbo"] == metrics["neg_elbo"]


def _whitened(rng, b, d, target_var):
    x = rng.normal(size=(b, d)) @ rng.normal(size=(d, d))
    x -= x.mean(0)
    evals, evecs = np.linalg.eigh(x.T @ x / b)
    return (x @ evecs / np.sqrt(evals) @ evecs.T * np.sqrt(target_var)).astype(np.float32)


def test_dip_penalties_vanish_for_a_decorrelated_unit_variance_code():
    rng = np.random.default_rng(6)
    mean = _whitened(rng, 64, 5, 1.0)  # Cov[mu] = I
    logvar = np.full((64, 5), np.log(0.3), np.float32)
    penalty_i = dis.dip_penalty(dis.dip_covariance(mean, logvar, "i"), 10.0, 100.0)
    assert abs(float(penalty_i)) < 1e-8
    # II: Cov[z] = Cov[mu] + E[diag var] = 0.7 I + 0.3 I.
    mean_ii = _whitened(rng, 64, 5, 0.7)
    penalty_ii = dis.dip_penalty(dis.dip_covariance(mean_ii, logvar, "ii"), 10.0, 10.0)
    assert abs(float(penalty_ii)) < 1e-8
    # The same code seen by the other type is off the identity on the diagonal only.
    assert float(dis.dip_penalty(dis.dip_covariance(mean, logvar, "ii"), 10.0, 0.0)) < 1e-8
    assert float(dis.dip_penalty(dis.dip_covariance(mean, logvar, "ii"), 0.0, 1.0)) > 0.4


def test_dip_penalties_match_numpy_and_are_positive_for_a_correlated_code():
    rng = np.random.default_rng(7)
    mean = (rng.normal(size=(32, 4)) @ rng.normal(size=(4, 4))).astype(np.float32)
    logvar = rng.normal(size=(32, 4)).astype(np.float32)
    rec_ll, kl = np.full(32, -50.0, np.float32), np.ones(32, np.float32)
    for dip_type in ("i", "ii"):
        cov = np.cov(mean.T, bias=True) + (np.diag(np.exp(logvar).mean(0)) if dip_type == "ii" else 0)
        off = cov - np.diag(np.diag(cov))
        ref = 2.0 * np.sum(off**2) + 20.0 * np.sum((np.diag(cov) - 1) ** 2)
        fn = jax.jit(lambda *a, t=dip_type: dis.dip_vae_loss(*a, lambda_od=2.0, lambda_d=20.0, dip_type=t))
        loss, metrics = fn(rec_ll, kl, mean, logvar)
        np.testing.assert_allclose(metrics["dip_penalty"], ref, rtol=1e-4)
        np.testing.assert_allclose(loss, 51.0 + ref, rtol=1e-4)
        assert metrics["cov_off_diag_sq"] > 0.1
    with pytest.raises(ConfigError, match="'iii'"):
        dis.dip_covariance(mean, logvar, "iii")


def test_permute_dims_keeps_each_marginal_and_breaks_the_dependence():
    rng = np.random.default_rng(8)
    a = rng.normal(size=4096)
    z = np.stack([a, a + 0.1 * rng.normal(size=4096)], axis=1).astype(np.float32)  # corr ~ 0.995
    perm = np.asarray(jax.jit(dis.permute_dims)(z, jax.random.key(0)))
    for j in range(2):
        np.testing.assert_array_equal(np.sort(perm[:, j]), np.sort(z[:, j]))
    assert abs(np.corrcoef(perm.T)[0, 1]) < 0.05
    assert not np.array_equal(perm[:, 0], z[:, 0])


def test_factor_vae_losses_match_numpy():
    rng = np.random.default_rng(9)
    logits_q, logits_p = rng.normal(size=(2, 16, 2)).astype(np.float32)
    rec_ll, kl = rng.normal(-80, 3, size=16).astype(np.float32), rng.random(16).astype(np.float32)
    loss, metrics = dis.factor_vae_loss(rec_ll, kl, logits_q, 40.0)
    tc = np.mean(logits_q[:, 0] - logits_q[:, 1])
    np.testing.assert_allclose(metrics["tc"], tc, rtol=1e-5)
    np.testing.assert_allclose(loss, np.mean(kl - rec_ll) + 40.0 * tc, rtol=1e-5)
    d_loss, d_metrics = jax.jit(dis.discriminator_loss)(logits_q, logits_p)
    p_q = np.exp(logits_q[:, 0]) / np.exp(logits_q).sum(1)
    p_p = np.exp(logits_p[:, 1]) / np.exp(logits_p).sum(1)
    np.testing.assert_allclose(d_loss, -0.5 * (np.log(p_q).mean() + np.log(p_p).mean()), rtol=1e-5)
    acc = 0.5 * (np.mean(p_q > 0.5) + np.mean(p_p > 0.5))
    np.testing.assert_allclose(d_metrics["disc_accuracy"], acc, rtol=1e-6)
    assert jnp.isfinite(dis.discriminator_loss(jnp.array([[80.0, -80.0]]), jnp.array([[80.0, -80.0]]))[0])
