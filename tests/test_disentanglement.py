"""Disentanglement metrics on representations with known answers; information functions pinned."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mutual_info_score

from tests.helpers import ToyFactors
from vae_jax.data import get_ground_truth_data
from vae_jax.evaluate import disentanglement as dis
from vae_jax.evaluate import information

# Small protocols with the fast options: DCI by random forest and SAP by the primal solver (the
# study's gradient boosting and dual solver take minutes on dSprites' 113 classes and on near-perfect
# codes; tests/test_metrics_protocol.py pins them on fewer classes).
SMALL = {
    "beta_vae_score": {"num_train": 1000, "num_eval": 500},
    "factor_vae_score": {"num_train": 1000, "num_eval": 500, "num_variance_estimate": 2000},
    "mig": {"num_train": 5000},
    "dci": {"num_train": 2000, "num_test": 1000, "importance_model": "random_forest"},
    "sap": {"num_train": 2000, "num_test": 1000, "svm_solver": "primal"},
    "modularity_explicitness": {"num_train": 2000, "num_test": 1000},
    "unsupervised": {"num_train": 2000},
}


class FromFactors:
    """A representation known in closed form from the factors (skips rendering)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, images):
        raise AssertionError("metrics should use of_factors")

    def of_factors(self, factors):
        return self.fn(np.asarray(factors, np.float64))


def _truth(k, seed=0):
    rng = np.random.default_rng(seed)
    perm, scale = rng.permutation(k), rng.uniform(0.5, 3.0, k)
    return FromFactors(lambda f: f[:, perm] * scale + 0.01 * rng.normal(size=f.shape))


def _noise(k, seed=1):
    rng = np.random.default_rng(seed)
    return FromFactors(lambda f: rng.normal(size=(len(f), k)))


def _rotated(sizes, seed=2):
    rotation = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(sizes), len(sizes))))[0]
    return FromFactors(lambda f: (f / np.asarray(sizes)) @ rotation)


def _scores(data, rep, seed=0):
    return dis.compute_metrics(list(dis.METRICS), data, rep, seed=seed, **SMALL)


@pytest.fixture(scope="module")
def dsprites():
    return get_ground_truth_data("dsprites")


@pytest.mark.slow
def test_true_factors_score_near_maximum(dsprites):
    s = _scores(dsprites, _truth(5))
    assert s["beta_vae_score"] > 0.98 and s["factor_vae_score"] > 0.98
    # 20-bin discretization caps MI at log 20 for the 32- and 40-valued factors: max ~0.9.
    assert s["mig"] > 0.85
    assert s["dci_disentanglement"] > 0.95 and s["dci_completeness"] > 0.95
    assert s["dci_informativeness"] > 0.95
    assert s["modularity_score"] > 0.95
    assert abs(s["gaussian_total_correlation"]) < 0.01  # independent factors, independent codes
    toy = _scores(ToyFactors(), _truth(4))
    # SAP's attainable maximum for binary factors is 1 - 0.5 (the runner-up latent is at chance).
    assert toy["sap"] > 0.45 and toy["mig"] > 0.95 and toy["beta_vae_score"] > 0.98


@pytest.mark.slow
def test_independent_noise_scores_near_chance(dsprites):
    s = _scores(dsprites, _noise(5))
    chance = 1 / 5
    assert abs(s["beta_vae_score"] - chance) < 0.06 and abs(s["factor_vae_score"] - chance) < 0.06
    assert s["mig"] < 0.02 and s["sap"] < 0.02 and s["dci_disentanglement"] < 0.05


@pytest.mark.slow
def test_rotation_mixing_factors_lowers_mig_and_dci(dsprites):
    truth, rotated = _scores(dsprites, _truth(5)), _scores(dsprites, _rotated(dsprites.factor_sizes))
    assert rotated["mig"] < truth["mig"] - 0.5
    assert rotated["dci_disentanglement"] < truth["dci_disentanglement"] - 0.5


@pytest.mark.slow
def test_scores_are_deterministic_for_a_fixed_rng(dsprites):
    rep = FromFactors(lambda f: np.tanh(f @ np.arange(25).reshape(5, 5) / 50.0))
    a, b = _scores(dsprites, rep, seed=3), _scores(dsprites, rep, seed=3)
    assert a == b


def test_grid_representation_encodes_each_image_once():
    data = ToyFactors()
    calls = []

    def fn(x):
        calls.append(len(x))
        return x * 2.0

    grid = dis.GridRepresentation(data, fn)
    f = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0]])
    np.testing.assert_array_equal(grid.of_factors(f), f * 2.0)
    grid.of_factors(f)
    assert sum(calls) == 16  # the 2^4 grid, once


def test_information_functions_match_references():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 3000), rng.integers(0, 3, 3000)
    b = np.where(rng.random(3000) < 0.5, a % 3, b)
    np.testing.assert_allclose(information.mutual_information(a, b), mutual_info_score(a, b), rtol=1e-10)
    np.testing.assert_allclose(information.entropy(a), stats.entropy(np.bincount(a)), rtol=1e-12)
    x = rng.normal(size=(1000, 2))
    codes = information.discretize(x, 20)
    assert codes.min() == 0 and codes.max() == 19
    edges = np.histogram(x[:, 0], 20)[1]
    np.testing.assert_array_equal(codes[:, 0], np.clip(np.digitize(x[:, 0], edges[:-1]) - 1, 0, 19))
    # Pinned values: a change of these numbers is a change of every MIG score.
    np.testing.assert_allclose(information.mutual_information([0, 0, 1, 1], [0, 1, 0, 1]), 0.0, atol=1e-15)
    np.testing.assert_allclose(information.mutual_information([0, 0, 1, 1], [0, 0, 1, 1]), np.log(2))


def test_unknown_metric_is_rejected(dsprites):
    with pytest.raises(ValueError, match="valid"):
        dis.compute_metrics(["mig", "mgi"], dsprites, _truth(5))


def test_baseline_representations(dsprites):
    from vae_jax.evaluate import baselines

    rng = np.random.default_rng(0)
    images = dsprites.sample_observations_from_factors(dsprites.sample_factors(7, rng))
    assert baselines.pca_representation(dsprites, rng, num_fit=300)(images).shape == (7, 10)
    assert baselines.ica_representation(dsprites, rng, num_fit=300)(images).shape == (7, 10)
    assert baselines.pixel_representation(images).shape == (7, 4096)
    pca = baselines.pca_representation(dsprites, rng, num_fit=300)
    score = dis.beta_vae_score(dsprites, pca, rng, num_train=50, num_eval=50, batch_size=8)
    assert 0.0 <= score["beta_vae_score"] <= 1.0  # rendered images through a real representation_fn
