"""The unsupervised scores of Locatello et al. 2019: Gaussian total correlation, Wasserstein
dependency and mutual-information score of the mean and the sampled representation.

Same interface as `vae_jax.evaluate.disentanglement`:
`metric(ground_truth_data, representation_fn, rng, **protocol) -> dict`, with the protocol of
disentanglement_lib's `unsupervised_study_v1` as defaults (`vae_jax.evaluate.protocol`).

Reference: Locatello et al. 2019, Sec. 4 and Appendix.
"""

import numpy as np

from vae_jax.evaluate import codes, information, protocol

PROTOCOL = protocol.defaults("unsupervised")


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


def mutual_info_score(z: np.ndarray, num_bins: int = PROTOCOL["num_bins"]) -> float:
    """Mean over ordered pairs i != j of I(z_i; z_j) between histogram-discretized code columns [N, d]."""
    d = z.shape[1]
    if d < 2:
        return 0.0
    discrete = information.discretize(z, num_bins)
    mi = information.mutual_information_matrix(discrete, discrete)
    np.fill_diagonal(mi, 0.0)
    return float(mi.sum() / (d * d - d))


def unsupervised_scores(z: np.ndarray, num_bins: int = PROTOCOL["num_bins"]) -> dict[str, float]:
    """The unsupervised scores of codes z [N, d] (covariance with ddof=1, as np.cov)."""
    cov = np.atleast_2d(np.cov(np.asarray(z, np.float64), rowvar=False))
    wasserstein = gaussian_wasserstein_correlation(cov)
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / float(np.trace(cov)),
        "mutual_info_score": mutual_info_score(z, num_bins),
    }


def unsupervised(
    data, representation_fn, rng, num_train=PROTOCOL["num_train"], num_bins=PROTOCOL["num_bins"]
):
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


METRICS = {"unsupervised": unsupervised}
