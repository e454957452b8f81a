"""The study's protocol pinned: every metric equals a reference written here from disentanglement_lib.

Each reference is computed from the factors the metric drew (read off the encoder's calls: the
codes are a fixed function of the factors) with scikit-learn's estimators built as the study's
scikit-learn built them by default: `LogisticRegression(solver='liblinear')` one binary model per
class (scikit-learn < 0.22), `GradientBoostingClassifier()`, `LinearSVC(C=0.01, dual=True, ...)`
(scikit-learn < 1.5), and disentanglement_lib's formulas (histogram discretization, entropies by
`mutual_info_score`, DCI's smoothed entropies, explicitness' `MultiLabelBinarizer` AUC).
"""

import inspect

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from sklearn import ensemble, linear_model, metrics, multiclass, preprocessing, svm

from vae_jax.errors import ConfigError
from vae_jax.evaluate import disentanglement as dis
from vae_jax.evaluate import protocol

SIZES = (3, 4, 5)


class SmallFactors:
    """Three uniformly drawn factors; observations are never rendered (codes come from factors)."""

    factor_names = ("a", "b", "c")
    factor_sizes = SIZES
    num_factors = 3
    observation_shape = (3,)

    def sample_factors(self, num, rng):
        return np.stack([rng.integers(0, s, num) for s in SIZES], axis=1)


class Recorded:
    """Entangled codes [N, 5] of the factors, recording every factor array it encodes.

    Codes 0-3 mix all factors (with a fixed pseudo-noise); code 4 carries factor a alone at a
    scale of 0.003: below the FactorVAE score's pruning threshold of 0.05.
    """

    def __init__(self):
        rng = np.random.default_rng(42)
        self.mix, self.wiggle = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
        self.calls = []

    def __call__(self, images):
        raise AssertionError("codes come from the factors")

    def of_factors(self, factors):
        self.calls.append(np.array(factors))
        return self.codes(factors)

    def codes(self, factors):
        u = (np.asarray(factors, np.float64) + 0.5) / np.asarray(SIZES)
        z = np.tanh(u @ self.mix) + 0.6 * np.sin(23.0 * u @ self.wiggle)
        return np.concatenate([z, 0.01 * u[:, :1]], axis=1)


def _era_logistic_regression():
    """`LogisticRegression()` of scikit-learn < 0.22: liblinear, one-vs-rest, C = 1."""
    return multiclass.OneVsRestClassifier(linear_model.LogisticRegression(solver="liblinear"))


def _histogram_discretize(x, num_bins=20):
    return np.stack([np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in x.T], axis=1)


def _mutual_info(codes, factors):
    return np.array([[metrics.mutual_info_score(f, c) for f in factors.T] for c in codes.T])


def _run(metric, rep=None, **kwargs):
    rep = rep or Recorded()
    return metric(SmallFactors(), rep, np.random.default_rng(7), **kwargs), rep


# The values of disentanglement_lib's config/unsupervised_study_v1/metric_configs/*.gin and metric files.
STUDY = {
    "beta_vae_score": {"num_train": 10_000, "num_eval": 5_000, "batch_size": 64,
                       "classifier": "ovr_liblinear"},
    "factor_vae_score": {"num_train": 10_000, "num_eval": 5_000, "batch_size": 64,
                         "num_variance_estimate": 10_000, "prune_threshold": 0.05},
    "mig": {"num_train": 10_000, "num_bins": 20},
    "dci": {"num_train": 10_000, "num_test": 5_000, "importance_model": "gradient_boosting"},
    "sap": {"num_train": 10_000, "num_test": 5_000, "svm_c": 0.01, "svm_solver": "dual"},
    "modularity_explicitness": {"num_train": 10_000, "num_test": 5_000, "num_bins": 20,
                                "classifier": "ovr_liblinear"},
    "unsupervised": {"num_train": 10_000, "num_bins": 20},
}  # fmt: skip


def test_defaults_are_the_studys():
    for name, values in STUDY.items():
        assert protocol.defaults(name) == values, name
        signature = inspect.signature(dis.METRICS[name]).parameters
        assert {k: signature[k].default for k in values} == values, name
        assert all(s.source.split(":")[-1].isdigit() for s in protocol.STUDY[name].values())
    assert inspect.signature(dis.compute_metrics).parameters["seed"].default == 0


def test_beta_vae_score_is_the_era_logistic_regression_on_pair_features():
    (s, rep) = _run(dis.METRICS["beta_vae_score"], num_train=300, num_eval=200)
    first, second = np.concatenate(rep.calls[0::2]), np.concatenate(rep.calls[1::2])  # z1, z2 chunks
    batch = STUDY["beta_vae_score"]["batch_size"]
    same = (first == second).reshape(-1, batch, 3).all(axis=1)  # [points, factors]
    assert same.sum(1).tolist() == [1] * 500  # one factor held per point
    labels = same.argmax(1)
    features = np.abs(rep.codes(first) - rep.codes(second)).reshape(-1, batch, 5).mean(1)
    model = _era_logistic_regression().fit(features[:300], labels[:300])
    assert s["beta_vae_score"] == pytest.approx(
        np.mean(model.predict(features[300:]) == labels[300:]), abs=1e-12
    )
    assert s["beta_vae_score_train"] == pytest.approx(model.score(features[:300], labels[:300]), abs=1e-12)


def test_factor_vae_score_prunes_below_0_05_and_votes_by_majority():
    (s, rep) = _run(dis.METRICS["factor_vae_score"], num_train=300, num_eval=200, num_variance_estimate=1000)
    batch = STUDY["factor_vae_score"]["batch_size"]
    global_var = np.var(rep.codes(rep.calls[0]), axis=0, ddof=1)
    active = np.sqrt(global_var) >= 0.05
    assert active.tolist() == [True] * 4 + [False]

    def votes(factors):
        groups = factors.reshape(-1, batch, 3)
        held = (groups == groups[:, :1]).all(axis=1).argmax(1)
        local = np.var(rep.codes(factors).reshape(-1, batch, 5), axis=1, ddof=1)
        table = np.zeros((3, 5), np.int64)
        for k, d in zip(held, np.argmin(local[:, active] / global_var[active], axis=1), strict=True):
            table[k, d] += 1
        return table

    train, evaluation = votes(rep.calls[1]), votes(rep.calls[2])
    vote = train.argmax(0)
    assert s["factor_vae_score"] == pytest.approx(
        evaluation[vote, range(5)].sum() / evaluation.sum(), abs=1e-12
    )
    assert s["factor_vae_score_train"] == pytest.approx(train[vote, range(5)].sum() / train.sum(), abs=1e-12)
    assert s["factor_vae_active_dims"] == 4


def test_mig_is_the_normalized_gap_of_histogram_mutual_information():
    (s, rep) = _run(dis.METRICS["mig"], num_train=500)
    factors = rep.calls[0]
    m = _mutual_info(_histogram_discretize(rep.codes(factors)), factors)
    top = np.sort(m, axis=0)
    entropy = np.array([metrics.mutual_info_score(f, f) for f in factors.T])
    assert s["mig"] == pytest.approx(np.mean((top[-1] - top[-2]) / entropy), rel=1e-10)


def _dci_reference(x_train, y_train, x_test, y_test):
    importance, train, test = np.zeros((x_train.shape[1], 3)), [], []
    for j in range(3):
        model = ensemble.GradientBoostingClassifier(random_state=0).fit(x_train, y_train[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train.append(np.mean(model.predict(x_train) == y_train[:, j]))
        test.append(np.mean(model.predict(x_test) == y_test[:, j]))
    per_code = 1 - scipy.stats.entropy(importance.T + 1e-11, base=3)
    per_factor = 1 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    return {
        "dci_disentanglement": np.sum(per_code * importance.sum(1) / importance.sum()),
        "dci_completeness": np.sum(per_factor * importance.sum(0) / importance.sum()),
        "dci_informativeness": np.mean(test),
        "dci_informativeness_train": np.mean(train),
    }


def test_dci_is_gradient_boosting_by_default():
    (s, rep) = _run(dis.METRICS["dci"], num_train=400, num_test=200)
    (train, test) = rep.calls
    reference = _dci_reference(rep.codes(train), train, rep.codes(test), test)
    for key in ("dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert s[key] == pytest.approx(reference[key], rel=1e-9), key


def test_sap_is_the_gap_of_linear_svm_accuracies():
    (s, rep) = _run(dis.METRICS["sap"], num_train=400, num_test=200)
    (train, test) = rep.calls
    x_train, x_test = rep.codes(train), rep.codes(test)
    score = np.zeros((5, 3))
    for i in range(5):
        for j in range(3):
            model = svm.LinearSVC(C=0.01, class_weight="balanced", dual=True, random_state=0)
            model.fit(x_train[:, i : i + 1], train[:, j])
            score[i, j] = np.mean(model.predict(x_test[:, i : i + 1]) == test[:, j])
    top = np.sort(score, axis=0)
    assert s["sap"] == pytest.approx(np.mean(top[-1] - top[-2]), abs=1e-12)


def test_modularity_and_explicitness_use_the_era_logistic_regression():
    (s, rep) = _run(dis.METRICS["modularity_explicitness"], num_train=400, num_test=200)
    (train, test) = rep.calls
    x_train, x_test = rep.codes(train), rep.codes(test)
    squared = np.square(_mutual_info(_histogram_discretize(x_train), train))
    top = squared.max(1)
    assert s["modularity_score"] == pytest.approx(np.mean(1 - (squared.sum(1) - top) / (top * 2)), rel=1e-10)
    mean, std = x_train.mean(0), x_train.std(0)
    aucs = []
    for j in range(3):
        model = _era_logistic_regression().fit((x_train - mean) / std, train[:, j])
        for x, y in ((x_train, train[:, j]), (x_test, test[:, j])):
            labels = preprocessing.MultiLabelBinarizer().fit_transform(y[:, None])
            aucs.append(metrics.roc_auc_score(labels, model.predict_proba((x - mean) / std)))
    aucs = np.reshape(aucs, (3, 2))
    assert s["explicitness_score_train"] == pytest.approx(np.mean(aucs, 0)[0], rel=1e-10)
    assert s["explicitness_score_test"] == pytest.approx(np.mean(aucs, 0)[1], rel=1e-10)


def test_unsupervised_scores_are_the_covariance_and_histogram_formulas():
    (s, rep) = _run(dis.METRICS["unsupervised"], num_train=500)
    z = rep.codes(rep.calls[0])
    cov = np.cov(z.T)
    wasserstein = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])).real
    mi = _mutual_info(*(2 * [_histogram_discretize(z)]))
    np.fill_diagonal(mi, 0)
    reference = {
        "gaussian_total_correlation": 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / np.trace(cov),
        "mutual_info_score": mi.sum() / 20,
    }
    assert s == pytest.approx(reference, rel=1e-8)


def test_named_options_and_bad_names():
    forest, _ = _run(dis.dci, num_train=400, num_test=200, importance_model="random_forest")
    boosted, _ = _run(dis.dci, num_train=400, num_test=200)
    assert forest["dci_disentanglement"] != boosted["dci_disentanglement"]
    multinomial, _ = _run(dis.beta_vae_score, num_train=300, num_eval=200, classifier="multinomial_lbfgs")
    assert 0.0 < multinomial["beta_vae_score"] <= 1.0
    for metric, option in (
        (dis.dci, {"importance_model": "gbt"}),
        (dis.beta_vae_score, {"classifier": "lbfgs"}),
    ):
        rep = Recorded()
        with pytest.raises(ConfigError, match="valid"):
            _run(metric, rep, **option)
        assert rep.calls == []  # raised before any code was drawn


def test_parallel_fits_and_shared_draws_leave_every_score_unchanged():
    protocols = {
        "beta_vae_score": {"num_train": 100, "num_eval": 50},
        "factor_vae_score": {"num_train": 100, "num_eval": 50, "num_variance_estimate": 500},
        "mig": {"num_train": 400},
        "dci": {"num_train": 400, "num_test": 200, "n_jobs": 1},
        "sap": {"num_train": 400, "num_test": 200, "n_jobs": 1},
        "modularity_explicitness": {"num_train": 400, "num_test": 200},
        "unsupervised": {"num_train": 400},
    }
    alone = Recorded()
    reference = dis.compute_metrics(list(dis.METRICS), SmallFactors(), alone, share_draws=False, **protocols)
    for name in ("dci", "sap"):
        protocols[name]["n_jobs"] = 3
    shared = Recorded()
    assert dis.compute_metrics(list(dis.METRICS), SmallFactors(), shared, **protocols) == reference
    # The 400 + 200 codes of MIG, DCI, SAP, Modularity and the unsupervised scores: encoded once.
    rows = [len(c) for c in shared.calls]
    assert rows.count(400) == 1 and rows.count(200) == 1
    assert [len(c) for c in alone.calls].count(400) == 5


def test_shared_draws_keep_codes_and_posteriors_apart():
    class WithPosterior(Recorded):
        """Its posterior mean is not its code: shared draws must not serve one for the other."""

        def posterior_of_factors(self, factors):
            z = self.codes(factors)
            return z + 0.1 * np.sin(50.0 * z), np.full_like(z, 0.1)

    protocols = {"mig": {"num_train": 400}, "unsupervised": {"num_train": 400}}
    names = ["mig", "unsupervised"]
    alone = dis.compute_metrics(names, SmallFactors(), WithPosterior(), share_draws=False, **protocols)
    assert dis.compute_metrics(names, SmallFactors(), WithPosterior(), **protocols) == alone
    assert "gaussian_total_correlation_sampled" in alone
