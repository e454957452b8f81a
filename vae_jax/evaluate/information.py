"""Entropy, mutual information and discretization, implemented here so scores cannot drift.

(disentanglement_lib's MIG changed when sklearn changed `mutual_info_score`;
these functions depend only on numpy counting.) All quantities are in nats.
"""

import numpy as np


def discretize(x: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Equal-width histogram bins per column of x [N, d] -> int codes [N, d] in [0, num_bins).

    The same rule as disentanglement_lib's `_histogram_discretize`: bin edges of
    `np.histogram(column, num_bins)`, each value assigned by `np.digitize` on the
    left edges.
    """
    x = np.asarray(x, np.float64)
    out = np.zeros(x.shape, np.int64)
    for j in range(x.shape[1]):
        edges = np.histogram(x[:, j], num_bins)[1]
        out[:, j] = np.digitize(x[:, j], edges[:-1]) - 1
    return np.clip(out, 0, num_bins - 1)


def entropy(labels: np.ndarray) -> float:
    """H(labels) of an integer vector [N]."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) of two integer vectors [N] from their joint histogram."""
    _, a = np.unique(np.asarray(a), return_inverse=True)
    _, b = np.unique(np.asarray(b), return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (pa @ pb)[nz])))


def mutual_information_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(code_i; factor_j) for integer codes [N, d] and factors [N, k] -> [d, k]."""
    return np.array(
        [[mutual_information(codes[:, i], factors[:, j]) for j in range(factors.shape[1])]
         for i in range(codes.shape[1])]
    )  # fmt: skip
