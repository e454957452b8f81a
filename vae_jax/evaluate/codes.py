"""Codes of ground-truth data for the metrics: encode sampled factors, cache a factor grid,
share the draws that several metrics make alike, and draw the sampled representation
z ~ q(z|x) beside the mean one.

A representation_fn maps images [B, H, W, C] (numpy) to codes [B, d]. It may also define
- `of_factors(factors) -> [B, d]`: codes straight from factors (no rendering);
- `posterior(images) -> (mean [B, d], variance [B, d])`: the Gaussian posterior q(z|x),
  whose samples are disentanglement_lib's 'sampled' representation (its `mean` and
  `sampled` postprocessing);
- `posterior_of_factors(factors) -> (mean, variance)`: the same from factors.
"""

from collections.abc import Callable

import numpy as np


class GridRepresentation:
    """Encodes every image of a finite factor grid once, then answers by table lookup.

    Worth it when a metric asks for more samples than the grid has images (the
    beta-VAE score's default protocol encodes 1.92M images; dSprites has 737,280).
    When the wrapped fn has `posterior`, the table holds the posterior variance too.
    """

    def __init__(self, ground_truth_data, representation_fn: Callable, batch_size: int = 1024):
        self.data = ground_truth_data
        self.fn = representation_fn
        self.batch_size = batch_size
        self._tables = None
        if hasattr(representation_fn, "posterior"):
            self.posterior = representation_fn.posterior
            self.posterior_of_factors = self._posterior_of_factors

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.fn(images)

    def _build(self) -> tuple[np.ndarray, np.ndarray | None]:
        sizes = tuple(self.data.factor_sizes)
        total = int(np.prod(sizes))
        encode = getattr(self.fn, "posterior", None)
        means, variances = [], []
        for start in range(0, total, self.batch_size):
            index = np.arange(start, min(start + self.batch_size, total))
            images = self.data.sample_observations_from_factors(np.stack(np.unravel_index(index, sizes), 1))
            if encode is None:
                means.append(np.asarray(self.fn(images)))
            else:
                mean, variance = encode(images)
                means.append(np.asarray(mean))
                variances.append(np.asarray(variance))
        return np.concatenate(means), (np.concatenate(variances) if variances else None)

    def table(self) -> np.ndarray:
        """The codes [prod(factor_sizes), d] of the grid in row-major factor order."""
        if self._tables is None:
            self._tables = self._build()
        return self._tables[0]

    def _index(self, factors: np.ndarray) -> np.ndarray:
        return np.ravel_multi_index(tuple(np.asarray(factors).T), tuple(self.data.factor_sizes))

    def of_factors(self, factors: np.ndarray) -> np.ndarray:
        return self.table()[self._index(factors)]

    def _posterior_of_factors(self, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.table()
        index = self._index(factors)
        return self._tables[0][index], self._tables[1][index]


class SharedDraws:
    """A representation_fn that remembers each draw of `sample_codes` and `sample_posterior_codes`
    by the generator state and size that made it, and answers the same draw again from memory.

    `compute_metrics` starts every metric from Generator(seed), and MIG, DCI, SAP, Modularity /
    Explicitness, the unsupervised scores and the FactorVAE score's variance estimate all begin by
    drawing 10,000 codes of uniformly sampled factors (the three with a test set then draw the same
    5,000): the same points, which disentanglement_lib's study also drew for each metric alike
    (every metric config sets `evaluation.random_seed = 0`). Remembering them leaves every score
    unchanged: a remembered draw returns the same arrays (read-only) and moves the generator to
    the state the draw left it in. Codes and posteriors are remembered apart (a model may compute
    its codes and its posterior mean by different programs).
    """

    def __init__(self, representation_fn: Callable):
        self.fn = representation_fn
        self._draws: dict = {}
        for name in ("of_factors", "posterior", "posterior_of_factors"):
            if hasattr(representation_fn, name):
                setattr(self, name, getattr(representation_fn, name))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.fn(images)

    def draw(self, kind: str, data, num: int, rng) -> tuple:
        """(factors [num, k], codes [num, d]) for kind 'codes', (factors, mean, variance) for
        'posterior', drawn from rng as `sample_codes` / `sample_posterior_codes` draw them."""
        key = (kind, num, repr(rng.bit_generator.state))
        if key not in self._draws:
            factors = data.sample_factors(num, rng)
            if kind == "codes":
                arrays = (factors, represent(data, self.fn, factors, rng))
            else:
                arrays = (factors, *posterior(data, self.fn, factors, rng))
            self._draws[key] = (tuple(_read_only(a) for a in arrays), rng.bit_generator.state)
        arrays, state = self._draws[key]
        rng.bit_generator.state = state
        return arrays


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()  # the caller's own array stays writable
    view.flags.writeable = False
    return view


def represent(data, representation_fn, factors: np.ndarray, rng, batch_size: int = 256) -> np.ndarray:
    """Codes [N, d] of the observations of factors [N, k]."""
    if hasattr(representation_fn, "of_factors"):
        return np.asarray(representation_fn.of_factors(factors), np.float64)
    parts = [
        np.asarray(representation_fn(data.sample_observations_from_factors(factors[i : i + batch_size], rng)))
        for i in range(0, len(factors), batch_size)
    ]
    return np.concatenate(parts).astype(np.float64)


def sample_codes(data, representation_fn, num: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(codes [num, d], factors [num, k]) for uniformly sampled factors."""
    if isinstance(representation_fn, SharedDraws):
        factors, codes = representation_fn.draw("codes", data, num, rng)
        return codes, factors
    factors = data.sample_factors(num, rng)
    return represent(data, representation_fn, factors, rng), factors


def has_posterior(representation_fn) -> bool:
    """Whether representation_fn gives q(z|x), so the sampled representation exists."""
    return hasattr(representation_fn, "posterior") or hasattr(representation_fn, "posterior_of_factors")


def posterior(data, representation_fn, factors: np.ndarray, rng, batch_size: int = 256):
    """(mean [N, d], variance [N, d]) of q(z|x) for the observations of factors [N, k]."""
    if hasattr(representation_fn, "posterior_of_factors"):
        mean, variance = representation_fn.posterior_of_factors(factors)
        return np.asarray(mean, np.float64), np.asarray(variance, np.float64)
    means, variances = [], []
    for i in range(0, len(factors), batch_size):
        mean, variance = representation_fn.posterior(
            data.sample_observations_from_factors(factors[i : i + batch_size], rng)
        )
        means.append(np.asarray(mean, np.float64))
        variances.append(np.asarray(variance, np.float64))
    return np.concatenate(means), np.concatenate(variances)


def sample_posterior_codes(data, representation_fn, num: int, rng):
    """(mean codes [num, d], sampled codes z = mean + sqrt(variance) * eps [num, d], factors)."""
    if isinstance(representation_fn, SharedDraws):
        factors, mean, variance = representation_fn.draw("posterior", data, num, rng)
    else:
        factors = data.sample_factors(num, rng)
        mean, variance = posterior(data, representation_fn, factors, rng)
    sampled = mean + np.sqrt(variance) * rng.standard_normal(mean.shape)
    return mean, sampled, factors
