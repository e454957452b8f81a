"""The five standard disentanglement metrics, with disentanglement_lib's protocols as defaults.

Every metric is `metric(ground_truth_data, representation_fn, rng, **protocol) -> dict`:
`ground_truth_data` is what `vae_jax.data.get_ground_truth_data(name)` returns,
`representation_fn` maps images [B, H, W, C] (numpy) to codes [B, d] (for a
VAE: the posterior mean), `rng` is a `numpy.random.Generator`; results are
deterministic for a fixed rng. A representation_fn may also define
`of_factors(factors) -> [B, d]` (see `GridRepresentation`, which encodes each
image of the factor grid once); metrics then skip rendering and re-encoding.
The helpers that draw codes live in `vae_jax.evaluate.codes`; the study's other
metrics (Modularity and Explicitness, the unsupervised scores) in
`vae_jax.evaluate.disentanglement_extra`, registered here in METRICS.

References: beta-VAE score, Higgins et al. 2017; FactorVAE score, Kim & Mnih
2018; MIG, Chen et al. 2018; DCI, Eastwood & Williams 2018; SAP, Kumar et al.
2018; protocols of Locatello et al. 2019 (disentanglement_lib).
"""

from collections.abc import Callable

import numpy as np

from vae_jax.errors import ConfigError
from vae_jax.evaluate import disentanglement_extra, information
from vae_jax.evaluate.codes import GridRepresentation, represent, sample_codes


def beta_vae_score(data, representation_fn, rng, num_train=10_000, num_eval=5_000, batch_size=64):
    """Accuracy of a logistic regression predicting which factor a pair batch held fixed.

    Each point: a factor k uniform at random; batch_size pairs whose factor k agrees;
    feature = mean |z1 - z2| over the pairs (Higgins et al. 2017, Sec. 3).
    """
    from sklearn import linear_model  # scikit-learn loads with the first metric that fits a model

    def points(n, chunk=64):
        k = rng.integers(0, data.num_factors, size=n)  # [n]
        features = []
        for start in range(0, n, chunk):  # chunks keep wide codes (raw pixels) in memory
            kc = k[start : start + chunk]
            f1 = data.sample_factors(len(kc) * batch_size, rng)
            f2 = data.sample_factors(len(kc) * batch_size, rng)
            rows = np.arange(len(kc) * batch_size)
            held = np.repeat(kc, batch_size)
            f2[rows, held] = f1[rows, held]
            z1 = represent(data, representation_fn, f1, rng)
            z2 = represent(data, representation_fn, f2, rng)
            features.append(np.abs(z1 - z2).reshape(len(kc), batch_size, -1).mean(1))
        return np.concatenate(features), k

    x_train, y_train = points(num_train)
    x_eval, y_eval = points(num_eval)
    model = linear_model.LogisticRegression(max_iter=1000, random_state=int(rng.integers(2**31)))
    model.fit(x_train, y_train)
    return {
        "beta_vae_score": float(np.mean(model.predict(x_eval) == y_eval)),
        "beta_vae_score_train": float(np.mean(model.predict(x_train) == y_train)),
    }


def factor_vae_score(
    data, representation_fn, rng, num_train=10_000, num_eval=5_000, batch_size=64,
    num_variance_estimate=10_000, prune_threshold=0.0,
):  # fmt: skip
    """Majority-vote accuracy of argmin-normalized-variance dimension -> fixed factor.

    Codes are divided by their global standard deviation (from num_variance_estimate
    samples); dimensions whose global std is below prune_threshold (collapsed
    latents) are ignored, as in disentanglement_lib (threshold 0.0 there).
    """
    codes, _ = sample_codes(data, representation_fn, num_variance_estimate, rng)
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_var) > prune_threshold
    if not active.any():
        return {"factor_vae_score": 0.0, "factor_vae_score_train": 0.0, "factor_vae_active_dims": 0.0}

    def votes(n):
        k = rng.integers(0, data.num_factors, size=n)
        f = data.sample_factors(n * batch_size, rng).reshape(n, batch_size, -1)
        f[np.arange(n), :, k] = f[np.arange(n), 0, k][:, None]
        z = represent(data, representation_fn, f.reshape(n * batch_size, -1), rng).reshape(n, batch_size, -1)
        local_var = np.var(z[:, :, active], axis=1, ddof=1)
        dim = np.argmin(local_var / global_var[active], axis=1)
        table = np.zeros((data.num_factors, int(active.sum())), np.int64)
        np.add.at(table, (k, dim), 1)
        return table

    train, evals = votes(num_train), votes(num_eval)
    classifier = np.argmax(train, axis=0)  # each dimension votes for its majority factor
    cols = np.arange(train.shape[1])
    return {
        "factor_vae_score": float(evals[classifier, cols].sum() / evals.sum()),
        "factor_vae_score_train": float(train[classifier, cols].sum() / train.sum()),
        "factor_vae_active_dims": float(active.sum()),
    }


def mig(data, representation_fn, rng, num_train=10_000, num_bins=20):
    """Mutual information gap: mean over factors of (top-1 - top-2 MI) / H(factor)."""
    codes, factors = sample_codes(data, representation_fn, num_train, rng)
    m = information.mutual_information_matrix(information.discretize(codes, num_bins), factors)  # [d, k]
    h = np.array([information.entropy(factors[:, j]) for j in range(factors.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros_like(top[0])
    return {"mig": float(np.mean((top[0] - second) / h))}


def _importance_model(name: str, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    if name == "random_forest":
        return RandomForestClassifier(
            n_estimators=100, max_features=None, min_samples_leaf=5, n_jobs=-1, random_state=seed
        )
    if name == "gbt":
        return GradientBoostingClassifier(random_state=seed)
    raise ValueError(f"importance_model={name!r}; valid: 'random_forest', 'gbt'")


def dci(data, representation_fn, rng, num_train=10_000, num_test=5_000, importance_model="random_forest"):
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    One classifier per factor gives feature importances R [d, k] and test accuracy
    (informativeness). `importance_model='random_forest'` is the random forest of
    the DCI paper (seconds); 'gbt' is disentanglement_lib's GradientBoostingClassifier
    (~5 minutes for dSprites' 113 classes on 2 cores).
    """
    x_train, y_train = sample_codes(data, representation_fn, num_train, rng)
    x_test, y_test = sample_codes(data, representation_fn, num_test, rng)
    k = y_train.shape[1]
    importance = np.zeros((x_train.shape[1], k))
    accuracy = np.zeros(k)
    for j in range(k):
        model = _importance_model(importance_model, int(rng.integers(2**31)))
        model.fit(x_train, y_train[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        accuracy[j] = np.mean(model.predict(x_test) == y_test[:, j])
    return {
        "dci_disentanglement": _weighted_one_minus_entropy(importance),
        "dci_completeness": _weighted_one_minus_entropy(importance.T),
        "dci_informativeness": float(np.mean(accuracy)),
    }


def _weighted_one_minus_entropy(importance: np.ndarray) -> float:
    """sum_i rho_i (1 - H_K(P_i.)), P_i. = row i normalized, H_K with log base K = #columns."""
    total = importance.sum()
    if total == 0:
        return 0.0
    rows = importance / np.maximum(importance.sum(1, keepdims=True), 1e-12)
    logs = np.log(np.where(rows > 0, rows, 1.0)) / np.log(importance.shape[1])
    per_row = 1.0 + np.sum(rows * logs, axis=1)
    return float(np.sum(per_row * importance.sum(1) / total))


def sap(data, representation_fn, rng, num_train=10_000, num_test=5_000, svm_c=0.01):
    """Separated attribute predictability: mean over factors of the top-1 - top-2 gap
    of single-latent linear-SVM accuracies (discrete factors, balanced class weights)."""
    from sklearn import svm

    x_train, y_train = sample_codes(data, representation_fn, num_train, rng)
    x_test, y_test = sample_codes(data, representation_fn, num_test, rng)
    d, k = x_train.shape[1], y_train.shape[1]
    score = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            model = svm.LinearSVC(C=svm_c, class_weight="balanced", random_state=0)
            model.fit(x_train[:, i : i + 1], y_train[:, j])
            score[i, j] = np.mean(model.predict(x_test[:, i : i + 1]) == y_test[:, j])
    top = np.sort(score, axis=0)[::-1]
    return {"sap": float(np.mean(top[0] - top[1]))}


METRICS: dict[str, Callable] = {
    "beta_vae_score": beta_vae_score,
    "factor_vae_score": factor_vae_score,
    "mig": mig,
    "dci": dci,
    "sap": sap,
    **disentanglement_extra.METRICS,
}


# Metrics whose default protocol encodes more images than dSprites has (1.92M and 0.97M).
_PAIR_METRICS = ("beta_vae_score", "factor_vae_score")


def compute_metrics(
    names, data, representation_fn, seed: int = 0, grid_cache: bool = True, **protocols
) -> dict[str, float]:
    """Runs the named metrics, each with its own Generator(seed).

    When a pair-based metric is requested (and grid_cache is set) the whole factor
    grid is encoded once (GridRepresentation) and shared by all metrics; turn it off
    for very wide codes such as raw pixels. Sources with `stochastic_observations`
    (Color/Noisy/Textured-dSprites, SmallNORB's random instance) are never cached.
    `protocols[name]` overrides a metric's keywords.
    """
    pairs = any(n in _PAIR_METRICS for n in names)
    # A table of one observation per factor combination would freeze the colours, noise or
    # nuisance factors that these sources draw afresh at each call.
    stochastic = getattr(data, "stochastic_observations", False)
    if grid_cache and pairs and not stochastic and not hasattr(representation_fn, "of_factors"):
        representation_fn = GridRepresentation(data, representation_fn)
    results = {}
    for name in names:
        if name not in METRICS:
            raise ConfigError(f"unknown disentanglement metric {name!r}; valid: {sorted(METRICS)}")
        rng = np.random.default_rng(seed)
        results.update(METRICS[name](data, representation_fn, rng, **protocols.get(name, {})))
    return results
