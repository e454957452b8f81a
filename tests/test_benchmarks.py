"""The PyTorch peer of the benchmark computes the same function shape as the JAX model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import beta_vae
from vae_jax.models import build_model, num_params

torch = pytest.importorskip("torch", reason="torch is the benchmark's optional peer: pip install '.[bench]'")


@pytest.mark.slow
def test_torch_peer_matches_the_jax_architecture():
    from benchmarks.torch_peer import BetaVAE

    peer = BetaVAE()
    model = build_model(beta_vae.get_config(), (64, 64, 1))
    params = model.init({"params": jax.random.key(0), "sample": jax.random.key(1)}, jnp.zeros((1, 64, 64, 1)))
    assert num_params(params["params"]) == sum(p.numel() for p in peer.parameters()) == 764_245
    x = np.random.default_rng(0).random((3, 64, 64, 1)).astype(np.float32)
    out = model.apply(params, x, rngs={"sample": jax.random.key(2)})
    logits, mean, logvar = peer(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    assert out.recon.shape == tuple(logits.permute(0, 2, 3, 1).shape) == (3, 64, 64, 1)
    assert out.mean.shape == tuple(mean.shape) == (3, 10) and out.logvar.shape == tuple(logvar.shape)
    # Layer by layer: the same kernel sizes and widths (torch OIHW vs flax HWIO).
    torch_convs = [m.weight.shape for m in peer.encoder if isinstance(m, torch.nn.Conv2d)]
    flax_convs = [params["params"]["encoder"][f"Conv_{i}"]["kernel"].shape for i in range(4)]
    assert [(k[2], k[3], k[1], k[0]) for k in torch_convs] == [tuple(k) for k in flax_convs]
