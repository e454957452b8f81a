"""The rest of Locatello et al. 2019's metrics: Modularity and Explicitness, and the unsupervised scores.

Same interface as `vae_jax.evaluate.disentanglement`:
`metric(ground_truth_data, representation_fn, rng, **protocol) -> dict`, protocols of
disentanglement_lib's `unsupervised_study_v1` as defaults (`modularity_explicitness.gin`,
`unsupervised.gin`: 10,000 train / 5,000 test points, 20 histogram bins).

References: Ridgeway & Zemel 2018, "Learning deep disentangled embeddings with the F-statistic
loss", Sec. 3 (modularity, explicitness); Locatello et al. 2019, Sec. 4 and Appendix (the
Gaussian total correlation, Wasserstein dependency and mutual-information score of the
mean and the sampled representation).
"""

import numpy as np

from vae_jax.evaluate import codes, information


def modularity(mutual_information: np.ndarray) -> float:
    """Mean over codes of 1 - delta_i, for MI [d, k] between codes and factors.

    delta_i = sum_{j != j*} m_ij^2 / ((k - 1) theta_i^2), theta_i = m_ij* = max_j m_ij: the
    squared deviation of code i's MI profile from the ideal one (all its information on its
    best factor), normalized. A code with no information (theta_i = 0) scores 0, as in
    disentanglement_lib. Ridgeway & Zemel 2018, Eq. 2.
    """
    squared = np.square(np.asarray(mutual_information, np.float64))  # [d, k]
    top = squared.max(axis=1)
    num_factors = squared.shape[1]
    if num_factors < 2:
        return 1.0
    delta = (squared.sum(axis=1) - top) / np.where(top > 0, top * (num_factors - 1), 1.0)
    return float(np.mean(np.where(top > 0, 1.0 - delta, 0.0)))


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)  # a constant code carries nothing; keep it finite
    return (train - mean) / std, (test - mean) / std


def _macro_auc(y: np.ndarray, classes: np.ndarray, proba: np.ndarray) -> float:
    """Mean over classes present in y (and absent somewhere) of the one-vs-rest ROC-AUC."""
    from sklearn import metrics

    onehot = y[:, None] == classes[None, :]  # [N, C]
    keep = onehot.any(0) & ~onehot.all(0)
    return float(metrics.roc_auc_score(onehot[:, keep], proba[:, keep], average="macro"))


def explicitness_per_factor(x_train, y_train, x_test, y_test) -> tuple[float, float]:
    """(train, test) macro ROC-AUC of a one-vs-rest logistic regression codes -> factor values.

    One-vs-rest with normalized probabilities is what disentanglement_lib's
    `LogisticRegression()` did under the scikit-learn of its time (multi_class='ovr').
    """
    from sklearn import linear_model, multiclass

    model = multiclass.OneVsRestClassifier(linear_model.LogisticRegression()).fit(x_train, y_train)
    classes = model.classes_
    return (
        _macro_auc(y_train, classes, model.predict_proba(x_train)),
        _macro_auc(y_test, classes, model.predict_proba(x_test)),
    )


def modularity_explicitness(data, representation_fn, rng, num_train=10_000, num_test=5_000, num_bins=20):
    """Modularity (each code informative about one factor) and explicitness (factors linearly decodable).

    Modularity uses MI [d, k] between histogram-discretized codes and factors (see
    `modularity`). Explicitness is the mean over factors of the macro ROC-AUC of a
    logistic regression from the standardized codes (train statistics) to the factor's
    values, on train and held-out codes; factors with a single value are skipped.
    """
    x_train, y_train = codes.sample_codes(data, representation_fn, num_train, rng)
    x_test, y_test = codes.sample_codes(data, representation_fn, num_test, rng)
    mi = information.mutual_information_matrix(information.discretize(x_train, num_bins), y_train)
    x_train, x_test = _standardize(x_train, x_test)
    aucs = [
        explicitness_per_factor(x_train, y_train[:, j], x_test, y_test[:, j])
        for j in range(y_train.shape[1])
        if len(np.unique(y_train[:, j])) > 1
    ]
    train, test = np.mean(aucs, axis=0) if aucs else (np.nan, np.nan)
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(train),
        "explicitness_score_test": float(test),
    }


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """TC of N(0, cov): KL(N(0, cov) || N(0, diag(cov))) = 1/2 (sum_i log cov_ii - log det cov).

    Equals -1/2 log det(corr) for the correlation matrix corr. Locatello et al. 2019, Sec. 4.
    """
    cov = np.asarray(cov, np.float64)
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and N(0, D), D = diag(cov).

    W_2^2 = tr cov + tr D - 2 tr (D^1/2 cov D^1/2)^1/2 = 2 tr cov - 2 tr (D^1/2 cov D^1/2)^1/2;
    the square root is taken by eigendecomposition of the symmetric D^1/2 cov D^1/2 (its trace
    equals disentanglement_lib's tr sqrtm(cov D)). Locatello et al. 2019, Sec. 4.
    """
    cov = np.asarray(cov, np.float64)
    half = np.sqrt(np.diag(cov))
    eigenvalues = np.linalg.eigvalsh(half[:, None] * cov * half[None, :])
    return float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def mutual_info_score(z: np.ndarray, num_bins: int = 20) -> float:
    """Mean over ordered pairs i != j of I(z_i; z_j) between histogram-discretized code columns [N, d]."""
    d = z.shape[1]
    if d < 2:
        return 0.0
    discrete = information.discretize(z, num_bins)
    mi = information.mutual_information_matrix(discrete, discrete)
    np.fill_diagonal(mi, 0.0)
    return float(mi.sum() / (d * d - d))


def unsupervised_scores(z: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """The unsupervised scores of codes z [N, d] (covariance with ddof=1, as np.cov)."""
    cov = np.atleast_2d(np.cov(np.asarray(z, np.float64), rowvar=False))
    wasserstein = gaussian_wasserstein_correlation(cov)
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / float(np.trace(cov)),
        "mutual_info_score": mutual_info_score(z, num_bins),
    }


def unsupervised(data, representation_fn, rng, num_train=10_000, num_bins=20):
    """Gaussian TC, Wasserstein dependency and MI score of the codes, without the factors.

    The plain keys score representation_fn's codes (the mean representation for a VAE).
    When representation_fn gives the posterior (`codes.has_posterior`), the same scores of
    the sampled representation z ~ q(z|x) of the same images follow with a `_sampled` suffix.
    """
    if not codes.has_posterior(representation_fn):
        z, _ = codes.sample_codes(data, representation_fn, num_train, rng)
        return unsupervised_scores(z, num_bins)
    mean, sampled, _ = codes.sample_posterior_codes(data, representation_fn, num_train, rng)
    scores = unsupervised_scores(mean, num_bins)
    scores.update({f"{k}_sampled": v for k, v in unsupervised_scores(sampled, num_bins).items()})
    return scores


METRICS = {"modularity_explicitness": modularity_explicitness, "unsupervised": unsupervised}
