"""The evaluation protocol of Locatello et al. 2019: disentanglement_lib's `unsupervised_study_v1`.

`STUDY` states, per metric, every value the study fixed, with the line of disentanglement_lib
(dlib, commit `DLIB_COMMIT`) that sets it; the metric functions of vae_jax.evaluate
(disentanglement, modularity, unsupervised) take their keyword defaults from it, so a metric
called without keywords runs the study's protocol. Paths are relative to dlib's package
directory `disentanglement_lib/`; `study/` stands for `config/unsupervised_study_v1/metric_configs/`.
docs/metrics_protocol.md shows the same table with what each value means.

The classifiers are scikit-learn's estimators as the study's scikit-learn built them by
default (dlib calls `LogisticRegression()`, `GradientBoostingClassifier()` and
`LinearSVC(C=0.01, class_weight="balanced")` without other arguments, and scikit-learn changed
some of those defaults later); the functions below build them with those values written out.
Other choices stay available under their names (`LINEAR_CLASSIFIERS`, `IMPORTANCE_MODELS`).
"""

from typing import Any, NamedTuple

from vae_jax.errors import ConfigError

DLIB_COMMIT = "86a644d4ed35c771560dc3360756363d35477357"


class Setting(NamedTuple):
    """One value of the protocol and the dlib file:line that sets it."""

    value: Any
    source: str


STUDY: dict[str, dict[str, Setting]] = {
    "beta_vae_score": {
        "num_train": Setting(10_000, "study/beta_vae_sklearn.gin:20"),
        "num_eval": Setting(5_000, "study/beta_vae_sklearn.gin:21"),
        "batch_size": Setting(64, "study/beta_vae_sklearn.gin:19"),
        "classifier": Setting("ovr_liblinear", "evaluation/metrics/beta_vae.py:66"),
    },
    "factor_vae_score": {
        "num_train": Setting(10_000, "study/factor_vae_metric.gin:20"),
        "num_eval": Setting(5_000, "study/factor_vae_metric.gin:21"),
        "batch_size": Setting(64, "study/factor_vae_metric.gin:22"),
        "num_variance_estimate": Setting(10_000, "study/factor_vae_metric.gin:19"),
        "prune_threshold": Setting(0.05, "study/factor_vae_metric.gin:23"),
    },
    "mig": {
        "num_train": Setting(10_000, "study/mig.gin:19"),
        "num_bins": Setting(20, "study/mig.gin:21"),
    },
    "dci": {
        "num_train": Setting(10_000, "study/dci.gin:19"),
        "num_test": Setting(5_000, "study/dci.gin:20"),
        "importance_model": Setting("gradient_boosting", "evaluation/metrics/dci.py:129"),
    },
    "sap": {
        "num_train": Setting(10_000, "study/sap_score.gin:19"),
        "num_test": Setting(5_000, "study/sap_score.gin:20"),
        "svm_c": Setting(0.01, "evaluation/metrics/sap_score.py:146"),
        "svm_solver": Setting("dual", "evaluation/metrics/sap_score.py:146"),
    },
    "modularity_explicitness": {
        "num_train": Setting(10_000, "study/modularity_explicitness.gin:19"),
        "num_test": Setting(5_000, "study/modularity_explicitness.gin:20"),
        "num_bins": Setting(20, "study/modularity_explicitness.gin:22"),
        "classifier": Setting("ovr_liblinear", "evaluation/metrics/modularity_explicitness.py:104"),
    },
    "unsupervised": {
        "num_train": Setting(10_000, "study/unsupervised.gin:19"),
        "num_bins": Setting(20, "study/unsupervised.gin:21"),
    },
}

# Every metric config of the study sets `evaluation.random_seed = 0` (study/*.gin:18): the
# default seed of `disentanglement.compute_metrics`.
SEED = Setting(0, "study/*.gin:18")


def defaults(metric: str) -> dict[str, Any]:
    """{keyword: value} of one metric's protocol."""
    return {name: setting.value for name, setting in STUDY[metric].items()}


# scikit-learn < 0.22's `LogisticRegression()` (0.22 made lbfgs and multinomial the defaults):
# liblinear's primal trust-region Newton solver, whose L2 penalty also applies to the intercept
# (a constant feature of value intercept_scaling), one binary model per class.
LOGISTIC_REGRESSION = {
    "solver": "liblinear",
    "C": 1.0,
    "tol": 1e-4,
    "max_iter": 100,
    "intercept_scaling": 1.0,
}
# scikit-learn < 1.5's `LinearSVC()`: liblinear's dual coordinate descent, at most 1000 passes
# (1.5 made dual='auto' the default, which picks the primal when there are more points than
# features); an L2-penalized squared hinge loss with the intercept penalized as well.
LINEAR_SVC = {"loss": "squared_hinge", "tol": 1e-4, "max_iter": 1000, "class_weight": "balanced"}

LINEAR_CLASSIFIERS = ("ovr_liblinear", "multinomial_lbfgs")
IMPORTANCE_MODELS = ("gradient_boosting", "random_forest")
SVM_SOLVERS = ("dual", "primal")


def check_option(name: str, value: str, valid: tuple[str, ...]) -> None:
    """Raises ConfigError unless value is one of valid (before anything slow runs)."""
    if value not in valid:
        raise ConfigError(f"{name}={value!r}; valid: {', '.join(repr(v) for v in valid)}")


def linear_classifier(name: str):
    """A logistic regression from codes to a factor's classes.

    'ovr_liblinear' (the study's): one liblinear logistic regression per class, probabilities
    normalized over the classes, predictions by the largest decision value.
    'multinomial_lbfgs': scikit-learn's default since 0.22 (one softmax model, lbfgs,
    unpenalized intercept), with max_iter 1000.
    """
    from sklearn import linear_model, multiclass

    check_option("classifier", name, LINEAR_CLASSIFIERS)
    if name == "ovr_liblinear":
        return multiclass.OneVsRestClassifier(linear_model.LogisticRegression(**LOGISTIC_REGRESSION))
    return linear_model.LogisticRegression(max_iter=1000)


def importance_model(name: str, seed: int):
    """A classifier with `feature_importances_` for DCI.

    'gradient_boosting' (the study's): `GradientBoostingClassifier()`'s defaults (100 stages of
    depth-3 regression trees, learning rate 0.1, every feature at every split); the seed only
    orders the features a split considers, which decides exact ties.
    'random_forest': 100 trees, every feature at every split, 5 points per leaf: seconds
    where gradient boosting takes minutes.
    """
    from sklearn import ensemble

    check_option("importance_model", name, IMPORTANCE_MODELS)
    if name == "gradient_boosting":
        return ensemble.GradientBoostingClassifier(random_state=seed)
    return ensemble.RandomForestClassifier(
        n_estimators=100, max_features=None, min_samples_leaf=5, random_state=seed
    )


def linear_svc(c: float, solver: str, seed: int):
    """SAP's classifier: a linear SVM (squared hinge, balanced class weights), one per class.

    'dual' (the study's): coordinate descent on the dual in random order (the seed), which on
    well-separated codes often stops at its 1000-pass limit short of the optimum, and slowly;
    'primal': liblinear's trust-region Newton method on the same objective (converged, fast).
    """
    from sklearn import svm

    check_option("svm_solver", solver, SVM_SOLVERS)
    return svm.LinearSVC(C=c, dual=solver == "dual", random_state=seed, **LINEAR_SVC)
