"""Modularity and Explicitness (Ridgeway & Zemel 2018), one metric of Locatello et al. 2019.

Same interface as `vae_jax.evaluate.disentanglement`:
`metric(ground_truth_data, representation_fn, rng, **protocol) -> dict`, with the protocol of
disentanglement_lib's `unsupervised_study_v1` as defaults (`vae_jax.evaluate.protocol`).

Reference: Ridgeway & Zemel 2018, "Learning deep disentangled embeddings with the F-statistic
loss", Sec. 3.
"""

import numpy as np

from vae_jax.evaluate import codes, information, protocol

PROTOCOL = protocol.defaults("modularity_explicitness")


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


def explicitness_per_factor(
    x_train, y_train, x_test, y_test, classifier=PROTOCOL["classifier"]
) -> tuple[float, float]:
    """(train, test) macro ROC-AUC of a logistic regression codes -> factor values.

    `classifier` names it (`protocol.linear_classifier`); the study's one-vs-rest liblinear
    model gives each class the normalized probability of its own binary model.
    """
    model = protocol.linear_classifier(classifier).fit(x_train, y_train)
    classes = model.classes_
    return (
        _macro_auc(y_train, classes, model.predict_proba(x_train)),
        _macro_auc(y_test, classes, model.predict_proba(x_test)),
    )


def modularity_explicitness(
    data, representation_fn, rng, num_train=PROTOCOL["num_train"], num_test=PROTOCOL["num_test"],
    num_bins=PROTOCOL["num_bins"], classifier=PROTOCOL["classifier"],
):  # fmt: skip
    """Modularity (each code informative about one factor) and explicitness (factors linearly decodable).

    Modularity uses MI [d, k] between histogram-discretized codes and factors (see
    `modularity`). Explicitness is the mean over factors of the macro ROC-AUC of a
    logistic regression from the standardized codes (train statistics) to the factor's
    values, on train and held-out codes; factors with a single value are skipped.
    """
    protocol.check_option("classifier", classifier, protocol.LINEAR_CLASSIFIERS)
    x_train, y_train = codes.sample_codes(data, representation_fn, num_train, rng)
    x_test, y_test = codes.sample_codes(data, representation_fn, num_test, rng)
    mi = information.mutual_information_matrix(information.discretize(x_train, num_bins), y_train)
    x_train, x_test = _standardize(x_train, x_test)
    aucs = [
        explicitness_per_factor(x_train, y_train[:, j], x_test, y_test[:, j], classifier)
        for j in range(y_train.shape[1])
        if len(np.unique(y_train[:, j])) > 1
    ]
    train, test = np.mean(aucs, axis=0) if aucs else (np.nan, np.nan)
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(train),
        "explicitness_score_test": float(test),
    }


METRICS = {"modularity_explicitness": modularity_explicitness}
