"""Pure pieces shared by the quantizers: gradient estimators, code statistics, k-means.

Estimators map (z, q) -> a value equal to the codeword q in the forward pass whose
gradient reaches the encoder output z:

- straight-through (Bengio et al. 2013; van den Oord et al. 2017): z + sg(q - z), the
  identity Jacobian.
- rotation trick (Fifty et al. 2024, "Restructuring Vector Quantization with the Rotation
  Trick", eq. 4): sg(lambda R) z with lambda = ||q|| / ||z|| and R the rotation that takes
  z/||z|| to q/||q|| in the plane they span, R = I - 2 r r^T + 2 q_hat z_hat^T with
  r = (z_hat + q_hat) / ||z_hat + q_hat||. The forward value is lambda R z = q; the
  gradient is lambda R^T g, so vectors in a code's Voronoi cell get different updates by
  their angle to the code instead of one shared one. R is applied as two rank-1 terms,
  never formed.
"""

import jax
import jax.numpy as jnp

ESTIMATORS = ("straight_through", "rotation")
_EPS = 1e-8


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
    """x / ||x|| along axis (a zero vector stays zero)."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), _EPS * _EPS))


def straight_through(z: jax.Array, q: jax.Array) -> jax.Array:
    """Forward q, gradient to z with identity Jacobian (q receives none)."""
    return z + jax.lax.stop_gradient(q - z)


def rotation_trick(z: jax.Array, q: jax.Array) -> jax.Array:
    """Forward q, gradient to z through sg(||q||/||z|| R) (Fifty et al. 2024); vectors on the last axis."""
    z_norm = jnp.linalg.norm(z, axis=-1, keepdims=True)
    q_norm = jnp.linalg.norm(q, axis=-1, keepdims=True)
    z_hat = z / jnp.maximum(z_norm, _EPS)
    q_hat = q / jnp.maximum(q_norm, _EPS)
    r = l2_normalize(z_hat + q_hat)
    z_hat, q_hat, r = (jax.lax.stop_gradient(a) for a in (z_hat, q_hat, r))
    scale = jax.lax.stop_gradient(q_norm / jnp.maximum(z_norm, _EPS))
    # R z = z - 2 (r . z) r + 2 (z_hat . z) q_hat
    rotated = (
        z - 2.0 * jnp.sum(r * z, -1, keepdims=True) * r + 2.0 * jnp.sum(z_hat * z, -1, keepdims=True) * q_hat
    )
    out = scale * rotated
    # Rounding leaves out within ~1e-7 of q; the forward value is exactly q, the gradient is out's.
    return out + jax.lax.stop_gradient(q - out)


def estimate(estimator: str, z: jax.Array, q: jax.Array) -> jax.Array:
    """The output of estimator ('straight_through' | 'rotation') for encodings z and codewords q."""
    if estimator == "rotation":
        return rotation_trick(z, q)
    if estimator == "straight_through":
        return straight_through(z, q)
    raise ValueError(f"estimator {estimator!r} is not one of {list(ESTIMATORS)}")


def nearest_codes(flat: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest codeword for each row of flat [N, D] given codebook [K, D]."""
    distances = (
        jnp.sum(flat**2, axis=1, keepdims=True)
        - 2.0 * flat @ codebook.T
        + jnp.sum(codebook**2, axis=1)[None, :]
    )  # [N, K]
    return jnp.argmin(distances, axis=1).astype(jnp.int32)


def usage_statistics(counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(perplexity, usage fraction) from per-code assignment counts [K]."""
    probs = counts / jnp.maximum(jnp.sum(counts), 1.0)
    entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)), 0.0))
    return jnp.exp(entropy), jnp.mean(counts > 0)


def kmeans(flat: jax.Array, num_codes: int, iterations: int, rng: jax.Array, spherical: bool = False):
    """Lloyd's k-means of rows flat [N, D]: centres [K, D] seeded by K random rows.

    Every statistic is a sum over all N rows, so under `jax.jit` with flat sharded on its
    batch axis the centres are those of the global batch. A cluster left empty keeps its
    centre. `spherical` re-normalises the centres after each step (cosine codes).
    """
    centres = flat[jax.random.randint(rng, (num_codes,), 0, flat.shape[0])]  # [K, D]

    def lloyd(_, centres):
        onehot = jax.nn.one_hot(nearest_codes(flat, centres), num_codes, dtype=flat.dtype)  # [N, K]
        counts = jnp.sum(onehot, axis=0)  # [K]
        means = (onehot.T @ flat) / jnp.maximum(counts, 1.0)[:, None]
        means = l2_normalize(means) if spherical else means
        return jnp.where(counts[:, None] > 0, means, centres)

    return jax.lax.fori_loop(0, iterations, lloyd, centres)
