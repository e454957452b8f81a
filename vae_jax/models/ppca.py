"""PCA and probabilistic PCA (Tipping & Bishop 1999) in closed form, as baseline models.

pPCA: x = W z + mu + eps, z ~ N(0, I_q), eps ~ N(0, sigma^2 I_D). The maximum-
likelihood solution from the sample covariance S = U diag(lambda) U^T is
sigma^2 = mean(lambda_{q+1..D}), W = U_q (Lambda_q - sigma^2 I)^{1/2}, and
log p(x) = log N(x; mu, C) with C = W W^T + sigma^2 I is exact.
"""

import dataclasses

import numpy as np

from vae_jax.errors import ConfigError
from vae_jax.objectives.densities import LOG_2PI


@dataclasses.dataclass
class PPCA:
    """A fitted pPCA model; `pca_components` are the top-q principal axes (plain PCA)."""

    mean: np.ndarray  # [D]
    weight: np.ndarray  # W, [D, q]
    noise_variance: float  # sigma^2
    pca_components: np.ndarray  # [q, D], orthonormal rows

    @classmethod
    def fit(cls, x: np.ndarray, num_components: int) -> "PPCA":
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        n, d = x.shape
        if not 0 < num_components < d:
            raise ConfigError(f"num_components={num_components} (model.latent_dim) must be in (0, {d})")
        mean = x.mean(0)
        _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
        eigenvalues = np.zeros(d)
        eigenvalues[: len(singular)] = singular**2 / n
        sigma2 = float(eigenvalues[num_components:].mean())
        scale = np.sqrt(np.maximum(eigenvalues[:num_components] - sigma2, 0.0))
        return cls(mean, vt[:num_components].T * scale, sigma2, vt[:num_components])

    @property
    def num_components(self) -> int:
        return self.weight.shape[1]

    def covariance(self) -> np.ndarray:
        return self.weight @ self.weight.T + self.noise_variance * np.eye(len(self.mean))

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """Exact log p(x) per example [N], via Woodbury and the determinant lemma."""
        x = np.asarray(x, np.float64).reshape(len(x), -1) - self.mean
        d, s2, w = len(self.mean), self.noise_variance, self.weight
        m = w.T @ w + s2 * np.eye(self.num_components)  # [q, q]
        proj = x @ w  # [N, q]
        quad = (np.sum(x**2, 1) - np.sum(proj * np.linalg.solve(m, proj.T).T, 1)) / s2
        logdet = (d - self.num_components) * np.log(s2) + np.linalg.slogdet(m)[1]
        return -0.5 * (d * LOG_2PI + logdet + quad)

    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(E[z | x] [N, q], Cov[z | x] [q, q]) = (M^-1 W^T (x - mu), sigma^2 M^-1)."""
        x = np.asarray(x, np.float64).reshape(len(x), -1) - self.mean
        m = self.weight.T @ self.weight + self.noise_variance * np.eye(self.num_components)
        return np.linalg.solve(m, self.weight.T @ x.T).T, self.noise_variance * np.linalg.inv(m)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """W E[z | x] + mu."""
        return self.posterior(x)[0] @ self.weight.T + self.mean

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.normal(size=(num, self.num_components))
        return (
            z @ self.weight.T
            + self.mean
            + np.sqrt(self.noise_variance) * rng.normal(size=(num, len(self.mean)))
        )

    def pca_project(self, x: np.ndarray) -> np.ndarray:
        """Plain PCA: coordinates on the top-q principal axes."""
        return (np.asarray(x, np.float64).reshape(len(x), -1) - self.mean) @ self.pca_components.T
