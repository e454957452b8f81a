"""pPCA in closed form, the importance-weighted bound, and the linear VAE reaching pPCA."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from vae_jax import objectives
from vae_jax.evaluate.likelihood import active_units, iwae_bound
from vae_jax.models import VAE, MLPDecoder, MLPEncoder
from vae_jax.models.ppca import PPCA


def _data(n=2000, d=10, q=3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, q)) * np.array([3.0, 2.0, 1.0])
    return (rng.normal(size=(n, q)) @ w.T + 0.5 * rng.normal(size=(n, d)) + 1.0).astype(np.float32)


def test_ppca_log_likelihood_matches_scipy():
    x = _data()
    model = PPCA.fit(x[:1500], 3)
    ref = stats.multivariate_normal(model.mean, model.covariance()).logpdf(x[1500:])
    np.testing.assert_allclose(model.log_likelihood(x[1500:]), ref, rtol=1e-8)
    # The ML solution: the model covariance matches the sample covariance on the principal subspace.
    s = np.cov(x[:1500].T, bias=True)
    u = model.pca_components
    np.testing.assert_allclose(u @ model.covariance() @ u.T, u @ s @ u.T, rtol=1e-6, atol=1e-8)
    mean, cov = model.posterior(x[:5])
    assert mean.shape == (5, 3) and cov.shape == (3, 3)
    assert model.sample(7, np.random.default_rng(0)).shape == (7, 10)
    assert np.mean((model.reconstruct(x) - x) ** 2) < np.mean((x - x.mean(0)) ** 2)


def test_iwae_bound_rises_towards_exact_log_likelihood():
    x = _data(n=400)
    model = PPCA.fit(x, 3)
    w, mu, s2 = (jnp.asarray(a, jnp.float32) for a in (model.weight, model.mean, model.noise_variance))
    xb = jnp.asarray(x[:200])

    def log_joint(z):  # [c, B, q] -> [c, B]
        recon = z @ w.T + mu
        log_px = jnp.sum(-0.5 * (jnp.log(2 * jnp.pi * s2) + (xb - recon) ** 2 / s2), -1)
        return log_px + jnp.sum(-0.5 * (jnp.log(2 * jnp.pi) + z**2), -1)

    post_mean, post_cov = model.posterior(x[:200])
    # A deliberately imperfect proposal: mean-field, 3x too wide, mean shifted.
    mean = jnp.asarray(post_mean + 0.3, jnp.float32)
    logvar = jnp.log(jnp.asarray(np.tile(np.diag(post_cov) * 3.0, (200, 1)), jnp.float32))
    exact = model.log_likelihood(x[:200]).mean()
    bound = jax.jit(iwae_bound, static_argnums=(0, 4, 5))
    values = [float(bound(log_joint, mean, logvar, jax.random.key(0), k, min(k, 100)).mean())
              for k in (1, 10, 100, 1000)]  # fmt: skip
    assert values[0] < values[1] < values[2] < values[3] <= exact + 1e-3
    assert exact - values[3] < 0.1 * (exact - values[0])  # most of the gap closed by k = 1000
    # With the exact posterior as proposal the bound is tight at every k.
    exact_logvar = jnp.log(jnp.asarray(np.tile(np.diag(post_cov), (200, 1)), jnp.float32))
    tight = float(
        bound(log_joint, jnp.asarray(post_mean, jnp.float32), exact_logvar, jax.random.key(1), 10, 10).mean()
    )
    assert abs(tight - exact) < 0.05


@pytest.mark.slow
def test_linear_vae_elbo_reaches_the_ppca_maximum_likelihood():
    """Lucas et al. 2019: the linear VAE's ELBO optimum is the pPCA log-likelihood."""
    raw = _data(n=2000)
    exact = PPCA.fit(raw, 3).log_likelihood(raw).mean()  # nats per example in the data's own units
    # Train in standardized units (so exp(logvar) of the linear encoder starts near 1); the change of
    # variables x = c * x_std + m shifts every log-density by -D log c, which we add back.
    c = raw.std()
    x = (raw - raw.mean(0)) / c
    jacobian = -x.shape[1] * np.log(c)
    model = VAE(MLPEncoder(6, hidden=()), MLPDecoder((10,), hidden=()), 3, learn_scale=True)
    params = model.init({"params": jax.random.key(0), "sample": jax.random.key(1)}, x[:2])["params"]
    tx = optax.adam(optax.cosine_decay_schedule(1e-2, 8000, alpha=0.01))
    xj = jnp.asarray(x)

    def neg_elbo(p, rng):
        out = model.apply({"params": p}, xj, rngs={"sample": rng})
        rec = objectives.gaussian_log_likelihood(out.recon, xj, out.log_scale)
        return jnp.mean(objectives.kl_standard_normal_per_dim(out.mean, out.logvar).sum(-1) - rec)

    @jax.jit
    def fit(p):
        def body(carry, rng):
            p, s = carry
            g = jax.grad(neg_elbo)(p, rng)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, tx.init(p)), jax.random.split(jax.random.key(2), 8000))[0][0]

    params = fit(params)
    rngs = jax.random.split(jax.random.key(3), 50)
    estimates = jax.jit(jax.vmap(neg_elbo, in_axes=(None, 0)))(params, rngs)  # 50 draws in one program
    elbo = -float(jnp.mean(estimates)) + jacobian
    assert abs(elbo - exact) / abs(exact) < 0.01, (elbo, exact)
    means = model.apply({"params": params}, xj, method=model.encode)[0]
    assert active_units(np.asarray(means)) == 3
