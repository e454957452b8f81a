"""Modularity and explicitness against numpy references and known answers."""

import numpy as np
import pytest

from tests.helpers import Codes
from tests.helpers import ToyFactors as BinaryFactors
from vae_jax.evaluate import modularity as mod


def _modularity_reference(m):
    """Ridgeway & Zemel 2018 Eq. 2 written out with the template t_i."""
    out = []
    for row in np.asarray(m, np.float64):
        theta = row.max()
        if theta == 0:
            out.append(0.0)
            continue
        template = np.where(np.arange(len(row)) == row.argmax(), theta, 0.0)
        out.append(1.0 - np.sum((row - template) ** 2) / (theta**2 * (len(row) - 1)))
    return np.mean(out)


def test_modularity_against_reference_and_known_answers():
    rng = np.random.default_rng(0)
    m = rng.uniform(0, 1, size=(7, 5))
    np.testing.assert_allclose(mod.modularity(m), _modularity_reference(m), rtol=1e-12)
    one_each = np.zeros((6, 4))
    one_each[np.arange(6), rng.integers(0, 4, 6)] = rng.uniform(0.5, 2.0, 6)
    assert mod.modularity(one_each) == pytest.approx(1.0)  # perfectly modular code
    assert mod.modularity(np.ones((3, 4))) == pytest.approx(0.0)  # every code on every factor
    assert mod.modularity(np.zeros((3, 4))) == 0.0  # uninformative codes score 0
    half = np.array([[1.0, 1.0, 0.0]])  # delta = 1 / (2 * 1)
    assert mod.modularity(half) == pytest.approx(0.5)


def _mann_whitney_auc(score, positive):
    """P(score of a positive > score of a negative), ties counting 1/2, by numpy ranks."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for value in np.unique(score):  # average ranks of ties
        ranks[score == value] = ranks[score == value].mean()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_explicitness_of_one_code_is_the_auc_of_that_code():
    rng = np.random.default_rng(1)
    y_train, y_test = rng.integers(0, 2, 600), rng.integers(0, 2, 400)
    x_train = (y_train + rng.normal(0, 1.2, 600))[:, None]
    x_test = (y_test + rng.normal(0, 1.2, 400))[:, None]
    train, test = mod.explicitness_per_factor(x_train, y_train, x_test, y_test)
    # A logistic regression on one code is monotone in it: its AUC is the code's own AUC.
    np.testing.assert_allclose(train, _mann_whitney_auc(x_train[:, 0], y_train == 1), rtol=1e-10)
    np.testing.assert_allclose(test, _mann_whitney_auc(x_test[:, 0], y_test == 1), rtol=1e-10)
    assert 0.6 < test < 0.8


def test_modularity_explicitness_known_representations():
    data, rng = BinaryFactors(), np.random.default_rng(2)
    perm = rng.permutation(4)
    truth = Codes(lambda f: f[:, perm] * 2.0 + 0.05 * rng.normal(size=f.shape))
    s = mod.modularity_explicitness(data, truth, np.random.default_rng(0), num_train=2000, num_test=1000)
    assert s["modularity_score"] > 0.99
    assert s["explicitness_score_train"] == pytest.approx(1.0)
    assert s["explicitness_score_test"] == pytest.approx(1.0)
    noise = Codes(lambda f: rng.normal(size=(len(f), 4)))
    s = mod.modularity_explicitness(data, noise, np.random.default_rng(0), num_train=2000, num_test=1000)
    assert abs(s["explicitness_score_test"] - 0.5) < 0.05
    # Code i = f_i + f_{i+1}: equal MI with two factors, none with the rest: delta = 1/3.
    pairs = Codes(lambda f: f + np.roll(f, -1, axis=1))
    s = mod.modularity_explicitness(data, pairs, np.random.default_rng(0), num_train=4000, num_test=1000)
    assert s["modularity_score"] == pytest.approx(2 / 3, abs=0.05)
