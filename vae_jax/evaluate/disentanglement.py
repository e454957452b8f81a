"""The five standard disentanglement metrics, with the study's protocol as defaults.

Every metric is `metric(ground_truth_data, representation_fn, rng, **protocol) -> dict`:
`ground_truth_data` is what `vae_jax.data.get_ground_truth_data(name)` returns,
`representation_fn` maps images [B, H, W, C] (numpy) to codes [B, d] (for a
VAE: the posterior mean), `rng` is a `numpy.random.Generator`; results are
deterministic for a fixed rng. A representation_fn may also define
`of_factors(factors) -> [B, d]` (see `GridRepresentation`, which encodes each
image of the factor grid once); metrics then skip rendering and re-encoding.
Keyword defaults are the protocol of Locatello et al. 2019 (`vae_jax.evaluate.protocol`,
with the disentanglement_lib line of each value). The helpers that draw codes live in
`vae_jax.evaluate.codes`; the study's other metrics in `vae_jax.evaluate.modularity`
(Modularity and Explicitness) and `vae_jax.evaluate.unsupervised`, registered here in METRICS.

References: beta-VAE score, Higgins et al. 2017; FactorVAE score, Kim & Mnih
2018; MIG, Chen et al. 2018; DCI, Eastwood & Williams 2018; SAP, Kumar et al.
2018; protocols of Locatello et al. 2019 (disentanglement_lib).
"""

import os
from collections.abc import Callable
from concurrent import futures

import numpy as np

from vae_jax.errors import ConfigError
from vae_jax.evaluate import information, modularity, protocol, unsupervised
from vae_jax.evaluate.codes import GridRepresentation, SharedDraws, represent, sample_codes

BETA_VAE = protocol.defaults("beta_vae_score")
FACTOR_VAE = protocol.defaults("factor_vae_score")
MIG = protocol.defaults("mig")
DCI = protocol.defaults("dci")
SAP = protocol.defaults("sap")


def thread_map(fn: Callable, items, n_jobs: int | None = None) -> list:
    """[fn(item) for item in items] on up to n_jobs threads (None: one per CPU core), in order.

    scikit-learn's tree fits release the GIL, so their fits run side by side.
    """
    items = list(items)
    workers = min(len(items), n_jobs or os.cpu_count() or 1)
    if workers <= 1:
        return [fn(item) for item in items]
    with futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def linear_accuracy(classifier: str, x_train, y_train, x_eval, y_eval) -> tuple[float, float]:
    """(train, eval) accuracy of `protocol.linear_classifier(classifier)` fit on (x_train, y_train)."""
    model = protocol.linear_classifier(classifier).fit(x_train, y_train)
    return float(np.mean(model.predict(x_train) == y_train)), float(np.mean(model.predict(x_eval) == y_eval))


def beta_vae_score(
    data, representation_fn, rng, num_train=BETA_VAE["num_train"], num_eval=BETA_VAE["num_eval"],
    batch_size=BETA_VAE["batch_size"], classifier=BETA_VAE["classifier"],
):  # fmt: skip
    """Accuracy of a logistic regression predicting which factor a pair batch held fixed.

    Each point: a factor k uniform at random; batch_size pairs whose factor k agrees;
    feature = mean |z1 - z2| over the pairs (Higgins et al. 2017, Sec. 3). `classifier`
    names the logistic regression (`protocol.linear_classifier`).
    """
    protocol.check_option("classifier", classifier, protocol.LINEAR_CLASSIFIERS)

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
    train, evaluation = linear_accuracy(classifier, x_train, y_train, x_eval, y_eval)
    return {"beta_vae_score": evaluation, "beta_vae_score_train": train}


def factor_vae_score(
    data, representation_fn, rng, num_train=FACTOR_VAE["num_train"], num_eval=FACTOR_VAE["num_eval"],
    batch_size=FACTOR_VAE["batch_size"], num_variance_estimate=FACTOR_VAE["num_variance_estimate"],
    prune_threshold=FACTOR_VAE["prune_threshold"],
):  # fmt: skip
    """Majority-vote accuracy of argmin-normalized-variance dimension -> fixed factor.

    Codes are divided by their global standard deviation (from num_variance_estimate
    samples); dimensions whose global std is below prune_threshold (collapsed latents)
    are ignored. `factor_vae_active_dims` counts the dimensions kept.
    """
    codes, _ = sample_codes(data, representation_fn, num_variance_estimate, rng)
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
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


def mig(data, representation_fn, rng, num_train=MIG["num_train"], num_bins=MIG["num_bins"]):
    """Mutual information gap: mean over factors of (top-1 - top-2 MI) / H(factor)."""
    codes, factors = sample_codes(data, representation_fn, num_train, rng)
    m = information.mutual_information_matrix(information.discretize(codes, num_bins), factors)  # [d, k]
    h = np.array([information.entropy(factors[:, j]) for j in range(factors.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros_like(top[0])
    return {"mig": float(np.mean((top[0] - second) / h))}


def importance_matrix(
    x_train, y_train, x_test, y_test, importance_model=DCI["importance_model"], n_jobs=None
):
    """(importances R [d, k], train accuracy [k], test accuracy [k]) of one classifier per factor.

    R[:, j] = |feature_importances_| of `protocol.importance_model(importance_model, seed=0)`
    fit on codes -> factor j. The factors' fits run on n_jobs threads, those with the most
    classes first (gradient boosting fits one tree per class and stage).
    """
    protocol.check_option("importance_model", importance_model, protocol.IMPORTANCE_MODELS)

    def fit(j):
        model = protocol.importance_model(importance_model, seed=0).fit(x_train, y_train[:, j])
        train = np.mean(model.predict(x_train) == y_train[:, j])
        return np.abs(model.feature_importances_), train, np.mean(model.predict(x_test) == y_test[:, j])

    k = y_train.shape[1]
    order = sorted(range(k), key=lambda j: -len(np.unique(y_train[:, j])))
    results = dict(zip(order, thread_map(fit, order, n_jobs), strict=True))
    importance, train, test = (np.array([results[j][i] for j in range(k)]) for i in range(3))
    return importance.T, train, test


def dci(
    data, representation_fn, rng, num_train=DCI["num_train"], num_test=DCI["num_test"],
    importance_model=DCI["importance_model"], n_jobs=None,
):  # fmt: skip
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    One classifier per factor gives feature importances R [d, k] and accuracy
    (informativeness: test, and train); see `importance_matrix`. The study's
    'gradient_boosting' takes minutes on a CPU at the default sample counts;
    'random_forest' seconds. n_jobs (threads; None: one per core) leaves the scores unchanged.
    """
    protocol.check_option("importance_model", importance_model, protocol.IMPORTANCE_MODELS)
    x_train, y_train = sample_codes(data, representation_fn, num_train, rng)
    x_test, y_test = sample_codes(data, representation_fn, num_test, rng)
    importance, train, test = importance_matrix(x_train, y_train, x_test, y_test, importance_model, n_jobs)
    return {
        "dci_disentanglement": weighted_one_minus_entropy(importance),
        "dci_completeness": weighted_one_minus_entropy(importance.T),
        "dci_informativeness": float(np.mean(test)),
        "dci_informativeness_train": float(np.mean(train)),
    }


def weighted_one_minus_entropy(importance: np.ndarray) -> float:
    """sum_i rho_i (1 - H_K(P_i.)) for importance [d, K]: P_i. = row i + 1e-11, normalized;
    H_K the entropy in base K; rho_i = row i's share of the total (uniform if all are 0)."""
    importance = np.asarray(importance, np.float64)
    rows = importance + 1e-11  # disentanglement_lib's smoothing: an all-zero row has entropy 1
    rows = rows / rows.sum(1, keepdims=True)
    per_row = 1.0 + np.sum(rows * np.log(rows), axis=1) / np.log(importance.shape[1])
    total = importance.sum()
    weights = importance.sum(1) / total if total > 0 else np.full(len(importance), 1 / len(importance))
    return float(np.sum(per_row * weights))


def sap_code_accuracies(code, y_train, code_test, y_test, svm_c=SAP["svm_c"], svm_solver=SAP["svm_solver"]):
    """Test accuracy [k] of `protocol.linear_svc` from one code's values [N] to each factor."""
    accuracies = []
    for j in range(y_train.shape[1]):
        model = protocol.linear_svc(svm_c, svm_solver, seed=0).fit(code[:, None], y_train[:, j])
        accuracies.append(float(np.mean(model.predict(code_test[:, None]) == y_test[:, j])))
    return accuracies


def sap_matrix(
    x_train, y_train, x_test, y_test, svm_c=SAP["svm_c"], svm_solver=SAP["svm_solver"], n_jobs=None
):
    """Test accuracy [d, k] of one linear SVM per (code, factor) (discrete factors).

    The codes' fits run in up to n_jobs processes (None: one per core): liblinear's dual solver
    draws from one random generator per process, so fits on threads would interleave its
    draws, and the scores with them.
    """
    d = x_train.shape[1]
    workers = min(d, n_jobs or os.cpu_count() or 1)
    args = [(x_train[:, i], y_train, x_test[:, i], y_test, svm_c, svm_solver) for i in range(d)]
    if workers <= 1:
        return np.array([sap_code_accuracies(*a) for a in args])
    import joblib  # scikit-learn's dependency, loaded with it

    return np.array(joblib.Parallel(n_jobs=workers)(joblib.delayed(sap_code_accuracies)(*a) for a in args))


def sap(
    data, representation_fn, rng, num_train=SAP["num_train"], num_test=SAP["num_test"], svm_c=SAP["svm_c"],
    svm_solver=SAP["svm_solver"], n_jobs=None,
):  # fmt: skip
    """Separated attribute predictability: mean over factors of the top-1 - top-2 gap
    of single-code linear-SVM accuracies (`sap_matrix`). The study's 'dual' solver can take
    a minute on well-separated codes; 'primal' solves the same problem in seconds."""
    protocol.check_option("svm_solver", svm_solver, protocol.SVM_SOLVERS)
    x_train, y_train = sample_codes(data, representation_fn, num_train, rng)
    x_test, y_test = sample_codes(data, representation_fn, num_test, rng)
    top = np.sort(sap_matrix(x_train, y_train, x_test, y_test, svm_c, svm_solver, n_jobs), axis=0)[::-1]
    return {"sap": float(np.mean(top[0] - top[1]))}


METRICS: dict[str, Callable] = {
    "beta_vae_score": beta_vae_score,
    "factor_vae_score": factor_vae_score,
    "mig": mig,
    "dci": dci,
    "sap": sap,
    **modularity.METRICS,
    **unsupervised.METRICS,
}


# Metrics whose default protocol encodes more images than dSprites has (1.92M and 0.97M).
_PAIR_METRICS = ("beta_vae_score", "factor_vae_score")


def compute_metrics(
    names, data, representation_fn, seed: int = protocol.SEED.value, grid_cache: bool = True,
    share_draws: bool = True, **protocols,
) -> dict[str, float]:  # fmt: skip
    """Runs the named metrics, each with its own Generator(seed).

    When a pair-based metric is requested (and grid_cache is set) the whole factor
    grid is encoded once (GridRepresentation) and shared by all metrics; turn it off
    for very wide codes such as raw pixels. Sources with `stochastic_observations`
    (Color/Noisy/Textured-dSprites, SmallNORB's random instance) are never cached.
    Every metric starts from the same seed, so those that begin by drawing codes of
    uniformly sampled factors draw the same ones: with share_draws each such draw is encoded
    once (`SharedDraws`), the scores unchanged. `protocols[name]` overrides a metric's keywords.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"unknown disentanglement metric {unknown[0]!r}; valid: {sorted(METRICS)}")
    pairs = any(n in _PAIR_METRICS for n in names)
    # A table of one observation per factor combination would freeze the colours, noise or
    # nuisance factors that these sources draw afresh at each call.
    stochastic = getattr(data, "stochastic_observations", False)
    if grid_cache and pairs and not stochastic and not hasattr(representation_fn, "of_factors"):
        representation_fn = GridRepresentation(data, representation_fn)
    if share_draws and not isinstance(representation_fn, SharedDraws):
        representation_fn = SharedDraws(representation_fn)
    results = {}
    for name in names:
        rng = np.random.default_rng(seed)
        results.update(METRICS[name](data, representation_fn, rng, **protocols.get(name, {})))
    return results
