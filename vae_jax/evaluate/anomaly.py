"""Anomaly scores: "was it likely that this example was generated?"

Per-example scores are negative log-likelihood bounds: -ELBO (a single-sample
L_1) and -L_k; an example scoring high is unlikely under the model. Trained
without one class, the model should score that class higher than the others:
the AUROC of that detection is reported per held-out class.
"""

import numpy as np

from vae_jax.errors import ConfigError


def held_out_class_auroc(
    labels: np.ndarray, held_out: int, per_example: dict[str, np.ndarray], log_lk: np.ndarray | None
) -> dict[str, float]:
    """AUROC of detecting class `held_out` among the eval examples by each anomaly score."""
    from sklearn.metrics import roc_auc_score  # imported by the runs that hold out a class only

    is_anomaly = np.asarray(labels) == held_out
    if is_anomaly.all() or not is_anomaly.any():
        raise ConfigError(
            f"data.held_out_class: held-out class {held_out} must be some but not all of the eval labels"
        )
    scores = {"neg_elbo": per_example.get("neg_elbo"), "rec": per_example["rec"]}
    if log_lk is not None:
        scores["iwae_nll"] = -np.asarray(log_lk)
    n = len(labels)
    return {
        f"anomaly_auroc_{name}": float(roc_auc_score(is_anomaly[: len(s)], s[:n]))
        for name, s in scores.items()
        if s is not None
    }
