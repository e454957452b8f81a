"""Importance-weighted objectives against numpy, PIWAE's split gradients, the VampPrior density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from experiments import common
from vae_jax import objectives
from vae_jax.evaluate import likelihood
from vae_jax.models import build_model
from vae_jax.objectives.importance import iw_loss, piwae_loss
from vae_jax.train.losses import LossSpec, importance_terms, is_inference_param, iw_objective
from vae_jax.train.state import create_train_state


def _log_w(s=12, b=5, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(s, b)) * 3.0 - 100.0, jnp.float32)


def _np_log_mean_exp(a, axis):
    return special.logsumexp(a, axis=axis) - np.log(a.shape[axis])


def test_bounds_match_numpy_and_reduce_to_the_elbo_at_one_sample():
    log_w = _log_w()
    lw = np.asarray(log_w, np.float64)
    loss = jax.jit(iw_loss, static_argnums=(1, 2))
    np.testing.assert_allclose(loss(log_w, "iwae")[0], -_np_log_mean_exp(lw, 0).mean(), 1e-5)
    np.testing.assert_allclose(loss(log_w, "elbo")[0], -lw.mean(), rtol=1e-6)
    miwae = -_np_log_mean_exp(lw.reshape(3, 4, 5), 1).mean()
    np.testing.assert_allclose(loss(log_w, "miwae", 3)[0], miwae, rtol=1e-5)
    ciwae = -(0.3 * lw.mean(0) + 0.7 * _np_log_mean_exp(lw, 0)).mean()
    np.testing.assert_allclose(iw_loss(log_w, "ciwae", 1, jnp.float32(0.3))[0], ciwae, 1e-5)
    one = log_w[:1]
    for name in ("elbo", "iwae", "miwae", "ciwae"):
        np.testing.assert_allclose(iw_loss(one, name)[0], -np.mean(lw[0]), rtol=1e-6)
    with pytest.raises(ValueError, match="not a multiple of num_outer=5"):
        iw_loss(log_w, "miwae", 5)


def test_miwae_with_one_group_is_iwae_and_ciwae_interpolates():
    log_w = _log_w(8)
    iwae = iw_loss(log_w, "iwae")[0]
    np.testing.assert_allclose(iw_loss(log_w, "miwae", 1)[0], iwae, rtol=1e-7)
    assert float(iw_loss(log_w, "miwae", 4)[0]) > float(iwae)  # fewer samples per bound
    np.testing.assert_allclose(iw_loss(log_w, "ciwae", 1, 0.0)[0], iwae, rtol=1e-7)
    elbo = iw_loss(log_w, "elbo")[0]
    np.testing.assert_allclose(iw_loss(log_w, "ciwae", 1, 1.0)[0], elbo, rtol=1e-7)
    assert float(elbo) > float(iwae)


def _vae_state(prior="standard", seed=0, **model):
    c = common.base_config()
    c.model.update(hidden=(16,), latent_dim=3, prior=prior, num_pseudo_inputs=4, **model)
    m = build_model(c, (6,))
    return m, create_train_state(m, c, (6,), jax.random.key(seed))


def _binary_batch(b=8, seed=1):
    return jnp.asarray(np.random.default_rng(seed).random((b, 6)) < 0.5, jnp.float32)


def test_lk_is_the_elbo_at_one_sample_and_rises_with_k_in_expectation():
    model, state = _vae_state()
    x = _binary_batch()
    variables = {"params": state.params}
    draws = 4000
    terms = importance_terms(state, state.params, x, jax.random.key(2), draws * 50, likelihood="bernoulli")
    lw = np.asarray(terms.log_w, np.float64)  # [draws * 50, B]
    means = {k: _np_log_mean_exp(lw[: draws * k].reshape(draws, k, -1), 1).mean(0) for k in (1, 5, 50)}
    # L_1 is the ELBO: its average over draws matches E_q[log p(x|z)] - KL, the KL in closed form.
    mean, logvar = model.apply(variables, x, method=model.encode)
    kl = np.asarray(objectives.kl_standard_normal_per_dim(mean, logvar).sum(-1), np.float64)
    log_px = np.asarray(terms.log_px, np.float64)[:draws]
    elbo = log_px.mean(0) - kl  # [B]
    kl_sampled = log_px - lw[:draws]  # log q - log p per draw: L_1 - ELBO is its mean minus KL
    np.testing.assert_allclose(means[1], elbo, atol=4 * kl_sampled.std(0).max() / np.sqrt(draws))
    stderr = lw[:draws].std(0) / np.sqrt(draws)
    # The bound rises with k by more than its sampling error, as the numpy mean over draws shows.
    assert means[1].mean() + 4 * stderr.mean() < means[5].mean() < means[50].mean()
    # The library's L_k evaluator agrees with these averages.
    lk = likelihood.iwae_per_example(
        model, state.variables, np.asarray(x), "bernoulli", 50, 8, jax.random.key(3)
    )
    assert abs(lk.mean() - means[50].mean()) < 0.05 * abs(means[50].mean() - means[1].mean()) + 0.02


def _grads(state, spec, rng):
    def loss(params):
        return iw_objective(state, params, x, rng, spec, likelihood="bernoulli")[0]

    x = _binary_batch()
    return jax.jit(jax.grad(loss))(state.params)


def test_piwae_gives_each_network_the_gradient_of_its_own_bound():
    _, state = _vae_state(prior="vamp")  # the pseudo-inputs belong to the generative model
    rng = jax.random.key(4)
    piwae = _grads(state, LossSpec(objective="piwae", num_samples=3, num_outer=2), rng)
    iwae = _grads(
        state, LossSpec(objective="iwae", num_samples=6), rng
    )  # the same 6 samples (same rng and shape)
    miwae = _grads(state, LossSpec(objective="miwae", num_samples=3, num_outer=2), rng)
    assert set(piwae) == {"encoder", "decoder", "pseudo_inputs"}
    for name in piwae:
        target = miwae if is_inference_param(name) else iwae
        other = iwae if is_inference_param(name) else miwae
        for a, b in zip(jax.tree.leaves(piwae[name]), jax.tree.leaves(target[name]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)
        assert not all(
            np.allclose(a, c, rtol=1e-3)
            for a, c in zip(jax.tree.leaves(piwae[name]), jax.tree.leaves(other[name]), strict=True)
        ), name  # the two bounds' gradients really differ: the test could tell them apart


def test_piwae_loss_values_are_its_bounds():
    log_w = _log_w(6)
    surrogate, metrics = piwae_loss(log_w, log_w, 2)
    iwae = iw_loss(log_w, "iwae")[0]
    miwae = iw_loss(log_w, "miwae", 2)[0]
    np.testing.assert_allclose(metrics["loss"], iwae, rtol=1e-7)
    np.testing.assert_allclose(metrics["miwae_bound"], -miwae, rtol=1e-7)
    np.testing.assert_allclose(surrogate, iwae + miwae, rtol=1e-7)


def test_vamp_prior_density_integrates_to_one_and_matches_scipy():
    rng = np.random.default_rng(0)
    means, logvars = rng.normal(size=(3, 1)) * 2, rng.normal(size=(3, 1)) * 0.5
    z = np.linspace(-25, 25, 200_001)[:, None]
    log_p = np.asarray(
        jax.jit(objectives.vamp_log_prior)(jnp.asarray(z), jnp.asarray(means), jnp.asarray(logvars))
    )
    ref = np.mean(
        [
            stats.norm(m, np.exp(0.5 * lv)).pdf(z[:, 0])
            for m, lv in zip(means[:, 0], logvars[:, 0], strict=True)
        ],
        0,
    )
    np.testing.assert_allclose(np.exp(log_p[::1000]), ref[::1000], rtol=1e-4, atol=1e-10)
    np.testing.assert_allclose(np.trapezoid(np.exp(log_p), z[:, 0]), 1.0, atol=1e-5)


def test_vamp_kl_estimate_converges_to_the_closed_form_when_the_prior_is_standard():
    """K = 1 and q(z | u_1) = N(0, I): the VampPrior is N(0, I) and the KL has its closed form."""
    mean, logvar = jnp.asarray([[0.7, -1.2]]), jnp.asarray([[-0.5, 0.4]])
    zeros = jnp.zeros((1, 2))

    @jax.jit
    def kl_samples(key):
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, (200_000, 1, 2))
        return objectives.log_normal_diag(z, mean, logvar) - objectives.vamp_log_prior(z, zeros, zeros)

    kl = kl_samples(jax.random.key(0))
    closed = float(objectives.kl_standard_normal_per_dim(mean, logvar).sum(-1)[0])
    stderr = float(jnp.std(kl)) / np.sqrt(kl.size)
    assert abs(float(jnp.mean(kl)) - closed) < 4 * stderr
    assert stderr < 0.01 * closed  # the check is tight enough to see a wrong density


def test_vamp_prior_samples_come_from_the_pseudo_input_posteriors():
    model, state = _vae_state(prior="vamp")
    variables = {"params": state.params}
    z = model.apply(variables, 20_000, method="sample_prior", rngs={"sample": jax.random.key(0)})
    means, logvars = model.apply(variables, state.params["pseudo_inputs"], method=model.encode)
    mixture_mean = np.asarray(means).mean(0)
    mixture_var = np.mean(np.exp(logvars) + np.square(means), 0) - np.square(mixture_mean)
    np.testing.assert_allclose(
        np.asarray(z).mean(0), mixture_mean, atol=4 * np.sqrt(mixture_var.max() / 20_000)
    )
    np.testing.assert_allclose(np.asarray(z).var(0), mixture_var, rtol=0.05)
