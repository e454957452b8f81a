"""Pictures written to `images/` at each evaluation: reconstructions, samples, traversals."""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import viz
from vae_jax.models import VAE, VQVAE


def to_image(recon: jax.Array, likelihood: str) -> jax.Array:
    """Decoder output -> displayable intensities in [0, 1]."""
    return jax.nn.sigmoid(recon) if likelihood == "bernoulli" else jnp.clip(recon, 0.0, 1.0)


def _variables(state):
    return {"params": state.params, **state.model_state}


# The pictures' model calls, each one compiled program per model and input shape.
@functools.partial(jax.jit, static_argnums=(0, 3))
def _decode(model, variables, z, likelihood):
    return to_image(model.apply(variables, z, method=model.decode), likelihood)


@functools.partial(jax.jit, static_argnums=0)
def _encode(model, variables, x):
    return model.apply(variables, x, method=model.encode)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _reconstruct(model, variables, x, likelihood):
    out = model.apply(variables, x, train=False, rngs={"sample": jax.random.key(0)})
    return to_image(out.recon, likelihood)


def decode(model, state, z: jax.Array, likelihood: str) -> np.ndarray:
    return np.asarray(_decode(model, _variables(state), jnp.asarray(z), likelihood))


def encode_mean(model, state, x: np.ndarray) -> np.ndarray:
    """The deterministic code: the posterior mean for a VAE, z for an AE, z_e for a VQ-VAE."""
    out = _encode(model, _variables(state), jnp.asarray(x))
    return np.asarray(out[0] if isinstance(model, VAE) else out)


def reconstruct(model, state, x: np.ndarray, likelihood: str) -> np.ndarray:
    if isinstance(model, VAE):
        return decode(model, state, jnp.asarray(encode_mean(model, state, x)), likelihood)
    return np.asarray(_reconstruct(model, _variables(state), jnp.asarray(x), likelihood))


def traversal_rows(
    model,
    state,
    x0: np.ndarray,
    dims: np.ndarray,
    likelihood: str,
    span: float = 2.5,
    steps: int = 9,
) -> np.ndarray:
    """Decodes the code of one image x0 [1, ...] with each of `dims` swept over [-span, span].

    Returns [len(dims), steps, H, W, C].
    """
    base = encode_mean(model, state, x0)[0]  # [d]
    values = np.linspace(-span, span, steps)
    z = np.repeat(base[None, None], len(dims), 0).repeat(steps, 1)  # [R, S, d]
    for r, d in enumerate(dims):
        z[r, :, d] = values
    images = decode(model, state, jnp.asarray(z.reshape(-1, base.shape[0])), likelihood)
    return images.reshape(len(dims), steps, *images.shape[1:])


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between codes a and b [d] at fractions t [S] -> [S, d]."""
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    return (np.sin((1 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)


def interpolation_rows(model, state, x: np.ndarray, likelihood: str, steps: int = 10) -> np.ndarray:
    """Decoded linear and spherical interpolations between encoded pairs (x[0], x[1]), (x[2], x[3]), ...

    Returns [2 * pairs, steps, H, W, C]: for each pair a linear row, then a spherical one.
    """
    codes = encode_mean(model, state, x)
    t = np.linspace(0.0, 1.0, steps)
    rows = []
    for a, b in zip(codes[0::2], codes[1::2], strict=False):
        rows += [(1 - t)[:, None] * a + t[:, None] * b, slerp(a, b, t)]
    z = np.concatenate(rows).astype(np.float32)
    images = decode(model, state, jnp.asarray(z), likelihood)
    return images.reshape(len(rows), steps, *images.shape[1:])


def manifold_grid(model, state, likelihood: str, size: int = 15, span: float = 2.5) -> np.ndarray:
    """Decodes a size x size grid of 2-D codes over [-span, span]^2 (the decoded manifold)."""
    values = np.linspace(-span, span, size, dtype=np.float32)
    z = np.stack(np.meshgrid(values, values[::-1]), -1).reshape(-1, 2)
    return decode(model, state, jnp.asarray(z), likelihood)


def write_pictures(
    model, state, x: np.ndarray, out_dir: str | Path, step: int, likelihood: str, rng: jax.Array,
    kl_per_dim: np.ndarray | None = None, dim_labels: list[str] | None = None,
    labels: np.ndarray | None = None, codes_x: np.ndarray | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Writes out_dir/<kind>_<step>.png (a workdir's images/); returns the grids (for TensorBoard)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = {}
    n = min(len(x), 32)
    recon = reconstruct(model, state, x[:n], likelihood)
    if x.ndim == 4:  # images: input row above its reconstruction row
        pairs = np.concatenate([x[:n].reshape(-1, 8, *x.shape[1:]), recon.reshape(-1, 8, *x.shape[1:])], 1)
        grids["reconstructions"] = viz.save_grid(
            out_dir / f"reconstructions_{step}.png", pairs.reshape(-1, *x.shape[1:]), 8
        )
    if x.ndim == 3:  # sequences [N, T, F]: input and reconstruction as curves
        viz.save_sequences(out_dir / f"reconstructions_{step}.png", x[:8], recon[:8])
    if x.ndim == 4 and len(x) >= 8 and not isinstance(model, VQVAE):
        rows = interpolation_rows(model, state, x[:8], likelihood)
        viz.save_labelled_rows(
            out_dir / f"interpolations_{step}.png", rows, ["linear", "spherical"] * (len(rows) // 2),
            title=f"interpolations between encoded test images (step {step})",
        )  # fmt: skip
    latent_dim = getattr(model, "latent_dim", None) or (
        encode_mean(model, state, x[:1]).shape[-1] if not isinstance(model, VQVAE) else None
    )
    if latent_dim == 2 and x.ndim == 4:
        kind = "VAE posterior means" if isinstance(model, VAE) else "AE codes"
        all_x = x if codes_x is None else codes_x
        viz.save_latent_scatter(
            out_dir / f"latent_2d_{step}.png", encode_mean(model, state, all_x), labels,
            f"{kind} of test images (step {step})",
        )  # fmt: skip
        grids["manifold"] = viz.save_grid(
            out_dir / f"manifold_{step}.png", manifold_grid(model, state, likelihood), 15
        )
    if isinstance(model, VAE):
        z = model.apply(_variables(state), 64, method="sample_prior", rngs={"sample": rng})
        samples = decode(model, state, z, likelihood)
        if samples.ndim == 4:
            grids["samples"] = viz.save_grid(out_dir / f"samples_{step}.png", samples, 8)
            order = np.argsort(-kl_per_dim) if kl_per_dim is not None else np.arange(model.latent_dim)
            rows = traversal_rows(model, state, x[:1], order, likelihood)
            labels = [
                f"z{d}" + (f" KL={kl_per_dim[d]:.2f}" if kl_per_dim is not None else "")
                + (f"\n~{dim_labels[d]}" if dim_labels else "")
                for d in order
            ]  # fmt: skip
            viz.save_labelled_rows(
                out_dir / f"traversals_{step}.png", rows, labels,
                title=f"latent traversals (step {step}), rows ordered by KL",
            )  # fmt: skip
    return grids
