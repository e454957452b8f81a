"""The unsupervised scores against numpy references and closed forms; the posterior codes they read."""

import numpy as np
import pytest
import scipy.linalg
from sklearn.metrics import mutual_info_score

from tests.helpers import Codes
from tests.helpers import ToyFactors as BinaryFactors
from vae_jax.evaluate import codes, information
from vae_jax.evaluate import disentanglement as dis
from vae_jax.evaluate import unsupervised as unsup


def _correlated_cov(rng, d):
    a = rng.normal(size=(d, d))
    scales = rng.uniform(0.5, 3.0, d)
    corr = a @ a.T + d * np.eye(d)
    corr = corr / np.sqrt(np.outer(np.diag(corr), np.diag(corr)))
    return corr * np.outer(scales, scales), corr


def test_gaussian_total_correlation_closed_forms():
    rng = np.random.default_rng(3)
    cov, corr = _correlated_cov(rng, 5)
    np.testing.assert_allclose(
        unsup.gaussian_total_correlation(cov), -0.5 * np.log(np.linalg.det(corr)), rtol=1e-10
    )
    # KL(N(0, cov) || N(0, diag cov)) written out.
    diag = np.diag(np.diag(cov))
    kl = 0.5 * (np.trace(np.linalg.inv(diag) @ cov) - 5 + np.log(np.linalg.det(diag) / np.linalg.det(cov)))
    np.testing.assert_allclose(unsup.gaussian_total_correlation(cov), kl, rtol=1e-10)
    assert unsup.gaussian_total_correlation(np.diag([0.1, 4.0, 9.0])) == pytest.approx(0.0, abs=1e-12)
    # On samples: an independent code ~ 0, a correlated one near the closed form.
    independent = rng.normal(size=(20_000, 5)) * rng.uniform(0.5, 3.0, 5)
    assert abs(unsup.unsupervised_scores(independent)["gaussian_total_correlation"]) < 5e-3
    z = rng.multivariate_normal(np.zeros(5), cov, size=20_000)
    np.testing.assert_allclose(
        unsup.unsupervised_scores(z)["gaussian_total_correlation"],
        -0.5 * np.log(np.linalg.det(corr)),
        rtol=0.05,
    )


def test_gaussian_wasserstein_correlation_against_sqrtm_and_closed_form():
    rng = np.random.default_rng(4)
    cov, _ = _correlated_cov(rng, 6)
    reference = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])).real
    np.testing.assert_allclose(unsup.gaussian_wasserstein_correlation(cov), reference, rtol=1e-8)
    rho = 0.6  # unit variances: sqrt of [[1, rho], [rho, 1]] has eigenvalues sqrt(1 +- rho)
    closed = 4.0 - 2.0 * (np.sqrt(1 + rho) + np.sqrt(1 - rho))
    np.testing.assert_allclose(unsup.gaussian_wasserstein_correlation(np.array([[1, rho], [rho, 1]])), closed)
    assert unsup.gaussian_wasserstein_correlation(np.diag([2.0, 5.0])) == pytest.approx(0.0, abs=1e-12)
    z = rng.multivariate_normal(np.zeros(6), cov, size=1000)
    s = unsup.unsupervised_scores(z)
    sample_cov = np.cov(z, rowvar=False)
    np.testing.assert_allclose(s["gaussian_wasserstein_correlation_norm"] * np.trace(sample_cov), s[
        "gaussian_wasserstein_correlation"
    ])  # fmt: skip


def test_mutual_info_score_against_sklearn_and_known_answers():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 3))
    x[:, 2] = x[:, 0] + 0.3 * rng.normal(size=3000)
    discrete = information.discretize(x, 20)
    pairs = [(i, j) for i in range(3) for j in range(3) if i != j]
    reference = np.mean([mutual_info_score(discrete[:, i], discrete[:, j]) for i, j in pairs])
    np.testing.assert_allclose(unsup.mutual_info_score(x), reference, rtol=1e-10)
    twins = np.repeat(rng.normal(size=(5000, 1)), 2, axis=1)  # I(z; z) = H(discretized z)
    entropy = information.entropy(information.discretize(twins[:, :1], 20)[:, 0])
    np.testing.assert_allclose(unsup.mutual_info_score(twins), entropy, rtol=1e-12)
    assert entropy > 2.0
    assert unsup.mutual_info_score(rng.normal(size=(20_000, 4))) < 0.02  # plug-in bias only


def test_unsupervised_metric_scores_mean_and_sampled_representations():
    data, s2, v = BinaryFactors(), 4.0, 1.0
    # Mean codes: two copies of one factor (scaled); the posterior adds unit-variance noise.
    rep = Codes(lambda f: np.sqrt(s2) * 2.0 * (f[:, [0, 0]] - 0.5), variance=v)
    s = unsup.unsupervised(data, rep, np.random.default_rng(0), num_train=20_000)
    assert s["gaussian_total_correlation"] > 10  # identical columns: det(cov) ~ 0
    rho = s2 / (s2 + v)  # sampled cov = [[s2 + v, s2], [s2, s2 + v]]
    np.testing.assert_allclose(s["gaussian_total_correlation_sampled"], -0.5 * np.log(1 - rho**2), rtol=0.05)
    closed = 2 * (s2 + v) * (2 - np.sqrt(1 + rho) - np.sqrt(1 - rho))
    np.testing.assert_allclose(s["gaussian_wasserstein_correlation_sampled"], closed, rtol=0.05)
    np.testing.assert_allclose(s["mutual_info_score"], np.log(2), rtol=1e-3)
    assert s["mutual_info_score_sampled"] < s["mutual_info_score"]
    no_posterior = unsup.unsupervised(data, Codes(rep.mean_fn), np.random.default_rng(0), num_train=2000)
    assert set(no_posterior) == {
        "gaussian_total_correlation", "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm", "mutual_info_score",
    }  # fmt: skip


def test_grid_representation_caches_the_posterior():
    data, calls = BinaryFactors(), []

    class Posterior:
        def __call__(self, x):
            raise AssertionError("the grid should encode through posterior once")

        def posterior(self, x):
            calls.append(len(x))
            return x * 2.0, x + 1.0

    grid = codes.GridRepresentation(data, Posterior())
    f = np.array([[0, 1, 1, 0], [1, 1, 1, 1]])
    mean, variance = codes.posterior(data, grid, f, np.random.default_rng(0))
    np.testing.assert_array_equal(mean, f * 2.0)
    np.testing.assert_array_equal(variance, f + 1.0)
    np.testing.assert_array_equal(grid.of_factors(f), f * 2.0)
    assert sum(calls) == 16 and codes.has_posterior(grid)
    assert not codes.has_posterior(codes.GridRepresentation(data, lambda x: x))


def test_vae_posterior_fn_and_registered_metrics():
    import jax

    from experiments import beta_vae
    from vae_jax.data import get_ground_truth_data
    from vae_jax.evaluate import ground_truth
    from vae_jax.evaluate.inference import Inference
    from vae_jax.models import build_model
    from vae_jax.train.validate import validate_config

    config = beta_vae.get_config("smoke")
    config.model.encoder, config.model.hidden = "mlp", (32,)  # a real VAE, quick to compile
    config.eval.disentanglement = ("modularity_explicitness", "unsupervised")
    validate_config(config)
    dsprites = get_ground_truth_data("dsprites")
    model = build_model(config, (64, 64, 1))
    rng = np.random.default_rng(0)
    images = dsprites.sample_observations_from_factors(dsprites.sample_factors(70, rng))
    keys = {"params": jax.random.key(0), "sample": jax.random.key(1)}
    variables = jax.jit(model.init)(keys, images[:1])
    fn = ground_truth.Representation(Inference(model, variables, "bernoulli", batch_size=32))
    mean, variance = fn.posterior(images)
    ref_mean, ref_logvar = model.apply(variables, images, method=model.encode)
    np.testing.assert_allclose(fn(images), ref_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance, np.exp(ref_logvar), rtol=1e-5, atol=1e-6)
    protocols = {
        "modularity_explicitness": {"num_train": 300, "num_test": 200},
        "unsupervised": {"num_train": 300},
    }
    s = dis.compute_metrics(list(config.eval.disentanglement), dsprites, fn, **protocols)
    assert 0.0 <= s["modularity_score"] <= 1.0 and 0.0 <= s["explicitness_score_test"] <= 1.0
    assert np.isfinite(s["gaussian_total_correlation_sampled"]) and s["mutual_info_score_sampled"] >= 0.0
