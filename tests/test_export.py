"""The accelerator path, checked without an accelerator: every experiment's train step lowers for GPU and TPU.

For each config in experiments/*.py that trains by gradient steps, the model and train state are built
from its `smoke` preset with the conv form 'auto' picks there, and the train step the
training loop runs (`feed.make_feed`, with the on-device batch gather for in-memory datasets)
is exported with `jax.export` for 'cuda' and 'tpu' (one module for both platforms, lowered
for each; 'auto' picks XLA's convolutions on both); so is the vmapped step of a 4-member sweep
(`sweep_step.make_sweep_step`, traced as on a GPU: 'auto' vectorization and conv form, which must
leave no grouped convolution in it) and an equivalent of the PixelCNN prior's step. The
arguments are shapes only (`jax.eval_shape`): nothing is initialized, run or compiled. `jax.export`
refuses custom calls without a compatibility guarantee, which is how a CPU-only kernel (the oneDNN
FFI calls) that reached an accelerator program would show up; the last test shows that it does.
A bfloat16 config (`model.dtype`) exports products in bfloat16 around float32 parameters.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.helpers import (
    ROOT,
    TENSOR,
    abstract_key,
    abstract_state,
    data_shape,
    load_config,
    operand_types,
    operands,
)
from vae_jax import data as data_lib
from vae_jax import ops
from vae_jax.models import build_model
from vae_jax.models.code_prior import PixelCNNPrior
from vae_jax.ops import onednn
from vae_jax.train import sharding
from vae_jax.train.feed import device_input, make_feed
from vae_jax.train.prior_training import make_prior_step
from vae_jax.train.state import TrainState
from vae_jax.train.sweep_spec import member_config, parse_sweep
from vae_jax.train.sweep_step import create_sweep_state, make_sweep_step

PLATFORMS = ("cuda", "tpu")
NOT_CONFIGS = {"run", "common", "study", "__init__"}  # the CLIs and shared pieces
# ppca is fitted in closed form (vae_jax.train.closed_form): no train step to lower.
# vq_prior trains a PixelCNN prior by prior_training.make_prior_step: test_prior_step_exports.
NOT_GRADIENT_STEPS = {"ppca", "vq_prior"}
CONFIGS = sorted(
    p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem not in NOT_CONFIGS | NOT_GRADIENT_STEPS
)
SWEEP_SIZE = 4
PROCEDURAL = ("dsprites", "color_dsprites", "noisy_dsprites", "textured_dsprites")
NO_GUARANTEE = "custom calls whose targets have no compatibility guarantees"


def accelerator_config(name: str, preset: str = "smoke"):
    """The config with the conv form 'auto' picks on every platform of PLATFORMS (the same on all)."""
    config = load_config(name, preset)
    (config.model.conv_impl,) = {ops.resolve_impl("auto", platform=p) for p in PLATFORMS}
    return config


def grouped_convolutions(module: str) -> tuple[int, int]:
    """(grouped, all) convolutions of a StableHLO module's text: grouped ones have a
    feature_group_count or batch_group_count above 1 (what JAX makes of a vmapped convolution
    whose kernel differs per member)."""
    convs = [line for line in module.splitlines() if "stablehlo.convolution" in line]
    groups = [re.findall(r"(?:feature|batch)_group_count = (\d+)", line) for line in convs]
    return sum(any(int(g) > 1 for g in found) for found in groups), len(convs)


@pytest.fixture
def traced_as_on_gpu(monkeypatch):
    """What asks JAX for its backend while a step is built and traced reads 'gpu' (the sweep's
    'auto' vectorization, the conv form 'auto' resolves to); the module is lowered for PLATFORMS."""
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")


def loop_step(config, shape):
    """The jitted train step `train_and_evaluate` runs, and its abstract (state, step input, rng).

    With data.on_device, in-memory image datasets and procedural dSprites get the on-device path
    (`feed.device_input`): the step reads its row of a chunk of draws (example indices, factors)
    and builds its batch from tables on the device (here two batches of zero images). The others
    get batches from the host.
    """
    in_memory = config.data.name in data_lib.sources.IMAGE_DATASETS
    images = np.zeros((2 * config.train.batch_size, *shape), np.float32) if in_memory else None
    procedural = config.data.name in data_lib.GROUND_TRUTH and config.data.name in PROCEDURAL
    dataset = data_lib.Dataset(
        name=config.data.name, data_shape=shape, batch_at=None, eval_images=None, train_images=images,
        ground_truth=data_lib.get_ground_truth_data(config.data.name) if procedural else None,
    )  # fmt: skip
    feed = make_feed(config, dataset, sharding.make_mesh())
    if device_input(config, dataset, sharding.make_mesh()) is None:
        return feed.step, jax.ShapeDtypeStruct((config.train.batch_size, *shape), jnp.float32)
    assert config.data.on_device
    stream = feed.batches(0)
    step_input = jax.eval_shape(lambda x: x, next(stream))
    stream.close()
    return feed.step, step_input


def signature(tree) -> list:
    """(path, shape, dtype) of every array of a pytree; static fields (apply_fn, tx) left out."""
    return [(jax.tree_util.keystr(p), a.shape, a.dtype) for p, a in jax.tree.leaves_with_path(tree)]


def assert_step_exported(exported, state, config):
    """The module is for PLATFORMS and maps the state to one of the same type, the metrics beside it."""
    assert exported.platforms == PLATFORMS
    new_state, metrics = jax.tree.unflatten(exported.out_tree, exported.out_avals)
    assert signature(new_state) == signature(state)
    assert {"loss", "grad_norm", "finite"} <= metrics.keys()
    if config.model.encoder == "conv":  # XLA's own stride-2 convolutions, not the CPU forms
        assert "stride = [2, 2]" in exported.mlir_module()


@pytest.mark.parametrize("name", CONFIGS)
def test_train_step_exports(name):
    config = accelerator_config(name)
    shape = data_shape(config.data.name)
    state = abstract_state(config, shape)
    step, batch_input = loop_step(config, shape)
    exported = jax.export.export(step, platforms=PLATFORMS)(state, batch_input, abstract_key())
    assert_step_exported(exported, state, config)


def export_sweep_step(config, spec: str = "optim.learning_rate=1e-3,3e-4 * seed=0,1"):
    """The exported sweep step of config's members, and their abstract stacked states."""
    configs = [member_config(config, a) for a in parse_sweep(spec, config)]
    assert len(configs) == SWEEP_SIZE
    shape = data_shape(config.data.name)
    model = build_model(config, shape)
    states, rngs = jax.eval_shape(lambda: create_sweep_state(model, configs, shape))
    batch = jax.ShapeDtypeStruct((config.train.batch_size, *shape), jnp.float32)
    step = make_sweep_step(config, sharding.make_mesh())
    return jax.export.export(step, platforms=PLATFORMS)(states, batch, rngs), states, configs


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_sweep_step_exports(name, traced_as_on_gpu):
    """A 4-member sweep's step as `sweep.train_sweep` builds it on an accelerator: vmapped, and with
    its conv layers as batched products over the members (no grouped convolution)."""
    config = load_config(name, "smoke")  # vectorize and conv_impl 'auto', as the presets leave them
    exported, states, configs = export_sweep_step(config)
    assert exported.platforms == PLATFORMS
    new_states, metrics = jax.tree.unflatten(exported.out_tree, exported.out_avals)
    assert signature(new_states) == signature(states)
    assert all(v.shape[0] == SWEEP_SIZE for v in metrics.values())  # per member
    assert all(v.shape == (SWEEP_SIZE,) for k, v in metrics.items() if k != "code_counts")  # VQ: [S, K]
    shape = data_shape(config.data.name)
    member = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), states)
    assert signature(member) == signature(abstract_state(configs[0], shape))
    assert grouped_convolutions(exported.mlir_module())[0] == 0


def test_vmapped_xla_convolutions_are_grouped(traced_as_on_gpu):
    """The count above can fail: XLA's convolutions (what 'auto' gave a vmapped sweep on a GPU before
    the member-batched forms) become grouped ones when vmapped with a kernel per member."""
    config = load_config("beta_vae", "smoke")
    config.model.conv_impl = "xla"
    grouped, total = grouped_convolutions(export_sweep_step(config)[0].mlir_module())
    assert 0 < grouped <= total


@pytest.mark.parametrize("name", ["beta_vae", "vq_vae"])
def test_bf16_train_step_exports_bf16_products_and_float32_parameters(name):
    """model.dtype='bfloat16': every convolution (forward and both gradients) and every dense
    layer's product is bf16; the products left in float32 are the VQ-VAE's distances to the
    codebook and its EMA sums (an operand with num_codes rows or columns); the module's arguments
    (parameters, optimizer state, EMA statistics) are float32."""
    config = accelerator_config(name)
    config.model.dtype = "bfloat16"
    shape = data_shape(config.data.name)
    state = abstract_state(config, shape)
    step, batch_input = loop_step(config, shape)
    exported = jax.export.export(step, platforms=PLATFORMS)(state, batch_input, abstract_key())
    assert_step_exported(exported, state, config)
    text = exported.mlir_module()
    convolutions, dots = operand_types(text, "convolution"), operands(text, "dot_general")
    assert convolutions and set(convolutions) == {("bf16", "bf16")}
    f32_dots = [d for d in dots if {dtype for _, dtype in d} == {"f32"}]
    assert all({dtype for _, dtype in d} == {"bf16"} for d in dots if d not in f32_dots)
    if config.model.name == "vqvae":
        codes = config.model.vq.num_codes
        assert f32_dots and all(any(codes in s for s, _ in d) for d in f32_dots), f32_dots
    else:
        assert dots and not f32_dots
    floats = [a.dtype for a in exported.in_avals if jnp.issubdtype(a.dtype, jnp.floating)]
    assert len(floats) > len(jax.tree.leaves(state.params)) and set(floats) == {jnp.dtype(jnp.float32)}
    main = next(line for line in text.splitlines() if "func.func public @main(" in line)
    arguments = [dtype for _, dtype in TENSOR.findall(main.split(") -> ", 1)[0])]
    assert arguments.count("f32") == len(floats) and "bf16" not in arguments


def test_prior_step_exports():
    """vq_prior: the step `prior_training.train_prior` runs (`make_prior_step`), for the PixelCNN
    prior over the code grid of the VQ-VAE the prior is trained on."""
    config = load_config("vq_prior", "smoke")
    vq_config = accelerator_config("vq_vae")  # the run that config.prior.vqvae_workdir names
    assert config.prior.vqvae_workdir.endswith(vq_config.name)
    shape = data_shape(vq_config.data.name)
    assert data_shape(config.data.name) == shape
    vqvae = build_model(vq_config, shape)
    vq_state = abstract_state(vq_config, shape)
    images = jax.ShapeDtypeStruct((config.train.batch_size, *shape), jnp.float32)
    variables = vq_state.variables
    codes = jax.eval_shape(lambda v, x: vqvae.apply(v, x).vq.indices, variables, images)
    assert codes.ndim == 3 and jnp.issubdtype(codes.dtype, jnp.integer)  # train_prior needs a code grid
    prior = PixelCNNPrior(vq_config.model.vq.num_codes, config.prior.features, config.prior.layers)
    params = jax.eval_shape(prior.init, abstract_key(), codes)
    tx = optax.adam(config.optim.learning_rate)
    state = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32), params=params, opt_state=jax.eval_shape(tx.init, params),
        model_state={}, hparams={}, apply_fn=prior.apply, tx=tx,
    )  # fmt: skip
    _, step = make_prior_step(prior, tx)
    exported = jax.export.export(jax.jit(step), platforms=PLATFORMS)(state, codes, abstract_key())
    assert exported.platforms == PLATFORMS
    new_state, metrics = jax.tree.unflatten(exported.out_tree, exported.out_avals)
    assert signature(new_state) == signature(state)
    assert metrics["loss"].shape == () and metrics["finite"].shape == ()


@pytest.mark.skipif(not onednn.available(), reason="the oneDNN kernels are not built on this machine")
def test_cpu_only_conv_form_does_not_export_for_cuda(monkeypatch):
    """The check can fail: the oneDNN FFI calls, registered for XLA:CPU only, are refused.

    `jax.export` rejects them as custom calls without a compatibility guarantee: JAX itself lowers an
    FFI call for any platform, and only XLA, compiling for the GPU, would find no handler for it. The
    kernels' per-shape self-check is skipped: it runs them (~25 s here) and says nothing about lowering.
    """
    monkeypatch.setattr(onednn, "verified", lambda *args, **kwargs: True)
    config = load_config("beta_vae", "smoke")
    config.model.conv_impl = "onednn"
    shape = data_shape(config.data.name)
    state = abstract_state(config, shape)
    step, batch = loop_step(config, shape)
    with pytest.raises(ValueError, match=NO_GUARANTEE) as error:
        jax.export.export(step, platforms=PLATFORMS)(state, batch, abstract_key())
    assert "vae_onednn_conv_fwd" in str(error.value)
