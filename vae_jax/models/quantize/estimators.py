"""Gradient estimators of the quantizers: how the gradient reaches the encoder through a code.

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
