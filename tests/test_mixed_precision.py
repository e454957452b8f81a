"""Mixed precision (`model.dtype='bfloat16'`): the networks compute in bfloat16, everything else stays
float32, and a bfloat16 step's loss is the float32 one to within bfloat16's rounding.

The per-config tests cover every experiment that trains by gradient steps (tests/helpers.py
CONFIGS but pPCA, which is fitted in closed form in float64 NumPy and has no network). What they
read is the program itself (the operand types of its products and reductions, lowered for the
CPU) and one loss evaluation per config: one compiled program computing the float32 and the
bfloat16 loss at the same parameters, so the comparison costs one compile per config.
"""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import (
    CONFIGS,
    ROOT,
    abstract_key,
    abstract_state,
    cli,
    data_shape,
    load_config,
    operand_types,
    products,
    use_local_idx,
)
from vae_jax import ops
from vae_jax.errors import ConfigError
from vae_jax.evaluate.likelihood import model_iwae_bound
from vae_jax.models import DTYPES, VAEOutput, build_model
from vae_jax.models.code_prior import PixelCNNPrior
from vae_jax.models.layers import ConvSame, StridedConv, StridedConvTranspose
from vae_jax.ops import onednn
from vae_jax.train import train_and_evaluate, validate_config
from vae_jax.train.losses import apply_model, importance_terms, step_loss
from vae_jax.train.state import create_train_state
from vae_jax.train.steps import make_eval_step, make_train_step

GRADIENT_CONFIGS = [name for name in CONFIGS if name != "ppca"]
# bfloat16 keeps 8 significant bits: one rounding is off by up to u = 2^-8 ~ 0.39 % of the value.
# The tolerance is one such rounding of the loss itself: the bf16 step's loss must be as close to
# the float32 one as the float32 loss rounded to bf16 would be. A loss sums per-pixel (per-dimension)
# terms whose rounding errors are largely independent, so its error is well below u (~u / sqrt(N)
# for N terms): at most 0.03 % for the MLP and conv models; the recurrent seq2seq AE carries its errors
# through 28 LSTM steps and is the largest, ~0.2 % (docs/performance.md, "Mixed precision").
LOSS_RTOL = 2.0**-8


def _config(name: str, dtype: str, conv_impl: str = "matmul"):
    """The smoke preset in `dtype`. The conv form is the one 'auto' takes for bf16 on the CPU, in
    both dtypes: the same function as oneDNN's, without its per-shape self-check (which runs the
    kernels); test_cpu_conv_forms_compute_in_the_input_dtype checks what 'auto' picks."""
    config = load_config(name, "smoke")
    config.model.dtype = dtype
    config.model.conv_impl = conv_impl
    return config


def _batch(config, shape) -> jax.Array:
    """A fixed batch of the config's shape, values in [0, 1) (targets of either likelihood)."""
    return jnp.asarray(np.random.default_rng(0).random((config.train.batch_size, *shape)), jnp.float32)


def _lowered_loss(config, shape) -> str:
    """The StableHLO of the train step's loss (forward) for config, lowered for the CPU."""
    state = abstract_state(config, shape)
    x = jax.ShapeDtypeStruct((config.train.batch_size, *shape), jnp.float32)
    loss = jax.jit(functools.partial(step_loss, likelihood=config.loss.likelihood))
    return loss.lower(state.params, state=state, x=x, rng=abstract_key()).as_text()


def _floating_dtypes(tree) -> set:
    return {a.dtype for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)}


@pytest.mark.parametrize("name", GRADIENT_CONFIGS)
def test_networks_compute_in_bf16_and_the_model_returns_float32(name):
    """In the bf16 loss the networks' products are bf16 (none mixed); the model's named output (the
    decoder's logits or mean, the posterior, the codes and VQ statistics; a VAE's log importance
    weights) is float32, so the likelihood and KL sums, the estimators and the metrics built from it
    are float32; no reduction in the program (sums, means, maxima of log-sum-exps, the VQ argmin)
    runs in bf16. The float32 config has nothing in bf16."""
    config = _config(name, "bfloat16")
    shape = data_shape(config.data.name)
    text = _lowered_loss(config, shape)
    bf16 = [t for t in products(text) if "bf16" in t]
    assert bf16 and all(set(t) == {"bf16"} for t in bf16), products(text)
    reductions = operand_types(text, "reduce")
    assert reductions and not [t for t in reductions if "bf16" in t], reductions
    state = abstract_state(config, shape)
    x = jax.ShapeDtypeStruct((config.train.batch_size, *shape), jnp.float32)
    outputs = [
        jax.eval_shape(functools.partial(apply_model, train=True), state, state.params, x, abstract_key())[0]
    ]
    if isinstance(outputs[0], VAEOutput):
        terms = functools.partial(importance_terms, num=2, likelihood=config.loss.likelihood)
        outputs.append(jax.eval_shape(terms, state, state.params, x, abstract_key()))
    assert _floating_dtypes(outputs) == {jnp.dtype(jnp.float32)}, outputs
    assert "bf16" not in _lowered_loss(_config(name, "float32"), shape)


@pytest.mark.parametrize("name", GRADIENT_CONFIGS)
def test_bf16_step_keeps_state_and_metrics_float32(name):
    """After a bf16 train step, parameters, optimizer state, EMA codebooks and FactorVAE's
    discriminator are float32, as are the step's and the eval step's metrics."""
    config = _config(name, "bfloat16")
    shape = data_shape(config.data.name)
    state = abstract_state(config, shape)
    batch = jax.ShapeDtypeStruct((config.train.batch_size, *shape), jnp.float32)
    new, metrics = jax.eval_shape(make_train_step(config.loss.likelihood), state, batch, abstract_key())
    assert _floating_dtypes((new, metrics)) == {jnp.dtype(jnp.float32)}
    assert jax.tree.structure(new.params) == jax.tree.structure(state.params)
    per_example = jax.eval_shape(make_eval_step(config.loss.likelihood), state, batch, abstract_key())
    assert _floating_dtypes(per_example) == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize("name", GRADIENT_CONFIGS)
def test_bf16_loss_agrees_with_float32(name):
    """The train step's loss at the same (initial) parameters and batch, float32 against bfloat16,
    within LOSS_RTOL; both in one compiled program."""
    configs = {dtype: _config(name, dtype) for dtype in DTYPES}
    shape = data_shape(configs["float32"].data.name)
    models = {dtype: build_model(c, shape) for dtype, c in configs.items()}

    @jax.jit
    def losses(x, rng):
        state = create_train_state(models["float32"], configs["float32"], shape, rng)
        return {
            dtype: step_loss(
                state.params, state=state.replace(apply_fn=m.apply), x=x, rng=rng,
                likelihood=configs[dtype].loss.likelihood,
            )[0]
            for dtype, m in models.items()
        }  # fmt: skip

    result = {k: float(v) for k, v in losses(_batch(configs["float32"], shape), jax.random.key(0)).items()}
    assert all(math.isfinite(v) for v in result.values()), result
    np.testing.assert_allclose(result["bfloat16"], result["float32"], rtol=LOSS_RTOL)


def test_code_prior_computes_in_bf16_with_float32_logits():
    """The PixelCNN prior: bf16 convolutions, float32 logits, the same NLL as float32 within LOSS_RTOL."""
    codes = jax.random.randint(jax.random.key(0), (4, 7, 7), 0, 16)
    priors = {dtype: PixelCNNPrior(16, features=16, layers=2, dtype=jnp.dtype(dtype)) for dtype in DTYPES}

    def nlls(rng):
        params = priors["float32"].init(rng, codes)
        logits = {dtype: prior.apply(params, codes) for dtype, prior in priors.items()}
        labels = codes[..., None]
        return {
            d: (v, -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(v), labels, -1)))
            for d, v in logits.items()
        }

    lowered = jax.jit(nlls).lower(jax.random.key(1))
    convolutions = operand_types(lowered.as_text(), "convolution")
    assert {t for t in convolutions} == {("bf16", "bf16"), ("f32", "f32")}, convolutions
    out = lowered.compile()(jax.random.key(1))
    assert out["bfloat16"][0].dtype == jnp.float32
    np.testing.assert_allclose(out["bfloat16"][1], out["float32"][1], rtol=LOSS_RTOL)


def test_importance_weighted_bound_of_a_bf16_model_is_float32():
    """L_k (evaluate/likelihood.py) reads the model's float32 outputs: float32, close to the f32 model's."""
    configs = {dtype: _config("iwae", dtype) for dtype in DTYPES}
    shape = data_shape(configs["float32"].data.name)
    models = {dtype: build_model(c, shape) for dtype, c in configs.items()}

    @jax.jit
    def bounds(x, rng):
        variables = models["float32"].init({"params": rng, "sample": rng}, x)
        return {
            dtype: model_iwae_bound(m, variables, x, "bernoulli", rng, k=8, chunk=4)
            for dtype, m in models.items()
        }

    result = bounds(_batch(configs["float32"], shape), jax.random.key(0))
    assert result["bfloat16"].dtype == jnp.float32
    np.testing.assert_allclose(result["bfloat16"], result["float32"], rtol=LOSS_RTOL)


LAYERS = [
    (StridedConv, (2, 8, 8, 1), 8),  # the image layer (taps gathered)
    (StridedConv, (2, 8, 8, 16), 8),  # space-to-depth
    (StridedConvTranspose, (2, 4, 4, 16), 1),  # the output layer (col2im)
    (StridedConvTranspose, (2, 4, 4, 8), 16),
    (ConvSame, (2, 7, 7, 6), 4),
]


@pytest.mark.parametrize("layer,shape,features", LAYERS)
def test_cpu_conv_forms_compute_in_the_input_dtype(layer, shape, features):
    """What 'auto' takes for bf16 on the CPU, the matrix-product forms (never the float32-only oneDNN
    kernels): bf16 products forward and backward, float32 parameter gradients, values within
    bf16's rounding of the float32 layer."""
    x = jax.random.normal(jax.random.key(0), shape)
    fp32, bf16 = layer(features), layer(features, dtype=jnp.bfloat16)
    perturb = lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape)  # noqa: E731 (non-zero biases)
    variables = jax.jit(lambda rng: jax.tree.map(perturb, fp32.init(rng, x)))(jax.random.key(1))

    def loss(variables, x):
        y = bf16.apply(variables, x)
        return jnp.sum(y.astype(jnp.float32) ** 2), y

    grad = jax.jit(jax.grad(loss, has_aux=True)).lower(variables, x)
    text = grad.as_text()
    assert "vae_onednn" not in text
    assert products(text) and all(set(t) == {"bf16"} for t in products(text)), products(text)
    grads, y = grad.compile()(variables, x)
    assert y.dtype == jnp.bfloat16
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    reference = jax.jit(layer(features, impl="xla").apply)(variables, x)
    np.testing.assert_allclose(np.asarray(y, np.float32), reference, rtol=2e-2, atol=2e-2 * float(jnp.std(y)))


@pytest.mark.skipif(not onednn.available(), reason="the oneDNN kernels are not built on this machine")
def test_auto_keeps_onednn_for_float32():
    """The other side of the test above: in float32, 'auto' on the CPU does call the oneDNN kernels."""
    x = jnp.zeros((2, 8, 8, 16))
    layer = StridedConv(8, impl="auto")
    variables = layer.init(jax.random.key(0), x)
    assert ops.resolve_impl("auto", "cpu") == "onednn"
    assert "vae_onednn" in jax.jit(layer.apply).lower(variables, x).as_text()


@pytest.mark.parametrize(
    "fields,expect",
    [
        (
            {"model.dtype": "float16"},
            "config.model.dtype='float16' is invalid: must be one of ['float32', 'bfloat16']",
        ),
        (
            {"model.dtype": "bfloat16", "model.conv_impl": "onednn"},
            "config.model.conv_impl='onednn' is invalid: the oneDNN kernels compute in float32 only",
        ),
    ],
)
def test_invalid_dtype_settings_are_config_errors(fields, expect):
    config = load_config("beta_vae", "smoke")
    validate_config(config)
    for field, value in fields.items():
        group, leaf = field.split(".")
        config[group][leaf] = value
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith(expect)


@pytest.mark.slow
def test_cli_refuses_an_unknown_dtype_in_one_line(tmp_path):
    config = f"--config={ROOT / 'experiments/beta_vae.py'}:smoke"
    result = cli(config, f"--workdir={tmp_path}/w", "--config.model.dtype=float16", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: config.model.dtype='float16' is invalid: must be one of ['float32', 'bfloat16']"
    )


# Smoke runs (12 steps, then the final evaluation) in both dtypes; results.json compared. After 12
# steps the two runs' parameters have drifted apart by bf16's rounding of 12 updates, so the
# tolerances are those of a run, not of one loss: relative on the bounds (nats per image), absolute
# on the KL (near 0 after 12 steps) and the code statistics. Measured: docs/performance.md.
RUN_RTOL = {"neg_elbo": 0.01, "rec": 0.01, "iwae_nll": 0.01}
RUN_ATOL = {"kl": 0.5, "perplexity": 2.0, "codebook_usage": 0.02}


def _compare_results(f32: dict, bf16: dict) -> dict:
    """{metric: (f32, bf16)} of the shared numeric metrics; asserts finite and within the tolerances."""
    shared = {k: (f32[k], bf16[k]) for k in f32.keys() & bf16.keys() if isinstance(f32[k], float)}
    assert all(math.isfinite(b) for _, b in shared.values()), shared
    for key, (a, b) in shared.items():
        if key in RUN_RTOL:
            assert abs(a - b) <= RUN_RTOL[key] * abs(a), (key, a, b)
        elif key in RUN_ATOL:
            assert abs(a - b) <= RUN_ATOL[key], (key, a, b)
    return shared


@pytest.mark.slow
@pytest.mark.parametrize("name", ["beta_vae", "vq_vae", "factor_vae"])
def test_bf16_smoke_run_lands_close_to_float32(name, tmp_path, idx_dir, tfds_dir):
    """train_and_evaluate in float32 and bfloat16 (the beta-VAE's bf16 run through the CLI)."""
    results = {}
    for dtype in DTYPES:
        config = use_local_idx(_config(name, dtype, conv_impl="auto"), idx_dir, tfds_dir)
        workdir = tmp_path / dtype
        if name == "beta_vae" and dtype == "bfloat16":
            cli(f"--config={ROOT / 'experiments/beta_vae.py'}:smoke", f"--workdir={workdir}",
                "--config.model.dtype=bfloat16")  # fmt: skip
            results[dtype] = json.loads((workdir / "results.json").read_text())
        else:
            results[dtype] = train_and_evaluate(config, workdir)
        assert results[dtype]["step"] == config.train.num_steps
    shared = _compare_results(results["float32"], results["bfloat16"])
    expected = {"rec", "perplexity"} if name == "vq_vae" else {"rec", "neg_elbo", "kl", "iwae_nll"}
    assert expected <= shared.keys()
