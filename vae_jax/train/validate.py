"""Config validation before anything is compiled, and the resume-compatibility check.

Each problem is reported as one ConfigError naming the field, the bad value and
what is allowed, so the CLI can print a single line and exit non-zero.
"""

import json
from pathlib import Path

import jax
import ml_collections

from vae_jax.config_text import lookup
from vae_jax.errors import ConfigError
from vae_jax.train.sweep_spec import member_config, parse_sweep

# Fields that may change between a run and its resumption: how long, how often to log / evaluate,
# and how the same parameters are computed with (the conv form; the dtype: checkpoints are float32
# in every dtype, and configs written before model.dtype existed resume as float32).
RESUMABLE_CHANGES = (
    "name", "train.num_steps", "train.log_every", "train.checkpoint_every",
    "train.keep_checkpoints", "eval.", "model.conv_impl", "model.dtype",
)  # fmt: skip


def _check(ok: bool, field: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"config.{field}={value!r} is invalid: {allowed}")


def _one_of(config, field: str, allowed) -> None:
    value = lookup(config, field)
    _check(value in allowed, field, value, f"must be one of {list(allowed)}")


def _validate_quantizer(vq: ml_collections.ConfigDict) -> None:
    """The quantizer fields of config.model.vq (vae_jax.models.quantizers)."""
    from vae_jax.models.quantize import ESTIMATORS, KINDS, code_dim
    from vae_jax.models.quantize.fsq import RECOMMENDED_LEVELS

    _check(vq.kind in KINDS, "model.vq.kind", vq.kind, f"must be one of {list(KINDS)}")
    _check(
        vq.estimator in ESTIMATORS, "model.vq.estimator", vq.estimator, f"must be one of {list(ESTIMATORS)}"
    )
    _check(vq.kmeans_init >= 0, "model.vq.kmeans_init", vq.kmeans_init, "must be >= 0 Lloyd steps (0 = off)")
    _check(
        vq.encoder_dim >= 0, "model.vq.encoder_dim", vq.encoder_dim, "must be >= 0 (0 = the code dimension)"
    )
    _check(vq.num_levels >= 1, "model.vq.num_levels", vq.num_levels, "must be >= 1 residual quantizer")
    levels = tuple(vq.fsq_levels)
    _check(all(int(v) >= 2 for v in levels), "model.vq.fsq_levels", levels, "every level must be >= 2")
    if vq.kind == "fsq":
        _check(
            bool(levels) or vq.num_codes in RECOMMENDED_LEVELS, "model.vq.num_codes", vq.num_codes,
            f"FSQ without model.vq.fsq_levels needs one of {sorted(RECOMMENDED_LEVELS)} (or set fsq_levels)",
        )  # fmt: skip
        for field in ("ema", "cosine", "kmeans_init", "restart_threshold"):
            _check(
                not vq[field],
                f"model.vq.{field}",
                vq[field],
                "FSQ has no codebook; leave it off with kind='fsq'",
            )
        _check(
            vq.estimator == "straight_through", "model.vq.estimator", vq.estimator,
            "FSQ rounds with straight-through; the rotation trick needs a codebook (kind='vq' or 'rvq')",
        )  # fmt: skip
    width = vq.encoder_dim
    _check(
        width == 0 or width >= code_dim(vq), "model.vq.encoder_dim", width,
        f"must be 0 or >= the code dimension {code_dim(vq)} (the projection goes down to the codes)",
    )  # fmt: skip
    _check(
        not (vq.kind == "rvq" and vq.cosine), "model.vq.cosine", vq.cosine,
        "residuals of unit-norm codes do not sum back to the input; use cosine with kind='vq'",
    )  # fmt: skip
    _check(
        not vq.dropout or vq.kind == "rvq", "model.vq.dropout", vq.dropout,
        "quantizer dropout drops residual levels; set model.vq.kind='rvq' or dropout=False",
    )  # fmt: skip


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for the first invalid field of config (and of each sweep member)."""
    _validate_model(config)
    _validate_loss_and_optim(config)
    _validate_data_and_train(config)
    _validate_eval(config)
    _one_of(config, "sweep.vectorize", ("auto", "vmap", "map"))
    if config.sweep.spec:
        for assignment in parse_sweep(config.sweep.spec, config):
            validate_config(member_config(config, assignment))


def _validate_model(config: ml_collections.ConfigDict) -> None:
    from vae_jax.models import DTYPES, MODELS, NETWORKS
    from vae_jax.ops import IMPLS

    _one_of(config, "model.name", sorted([*MODELS, "ppca", "vq_prior"]))
    _one_of(config, "model.encoder", NETWORKS)
    _one_of(config, "model.decoder", ("", *NETWORKS))
    _one_of(config, "model.conv_impl", IMPLS)
    _one_of(config, "model.dtype", DTYPES)
    _check(
        config.model.dtype == "float32" or config.model.conv_impl != "onednn", "model.conv_impl", "onednn",
        f"the oneDNN kernels compute in float32 only; with model.dtype={config.model.dtype!r} use "
        "'matmul' (or 'auto', which takes it on the CPU)",
    )  # fmt: skip
    _check(config.model.latent_dim > 0, "model.latent_dim", config.model.latent_dim, "must be > 0")
    vq = config.model.vq
    _check(vq.num_codes > 0, "model.vq.num_codes", vq.num_codes, "must be > 0")
    _check(vq.code_dim > 0, "model.vq.code_dim", vq.code_dim, "must be > 0")
    _check(0 < vq.decay < 1, "model.vq.decay", vq.decay, "must be in (0, 1)")
    _check(vq.restart_threshold >= 0, "model.vq.restart_threshold", vq.restart_threshold, "must be >= 0")
    _check(
        vq.restart_threshold == 0 or vq.ema, "model.vq.restart_threshold", vq.restart_threshold,
        "dead-code restart needs the EMA codebook (model.vq.ema=True) or restart_threshold=0",
    )  # fmt: skip
    _validate_quantizer(vq)
    _validate_vae_options(config)


def _validate_loss_and_optim(config: ml_collections.ConfigDict) -> None:
    from vae_jax.train.optimizer import OPTIMIZERS, SCHEDULES

    _one_of(config, "optim.schedule", SCHEDULES)
    for name in ("stage0_steps", "num_stages"):
        _check(config.optim[name] > 0, f"optim.{name}", config.optim[name], "must be > 0")
    _one_of(config, "loss.likelihood", ("bernoulli", "gaussian"))
    for name in ("beta", "beta_warmup", "gamma", "c_max", "commitment_cost"):
        _check(config.loss[name] >= 0, f"loss.{name}", config.loss[name], "must be >= 0")
    _check(config.loss.anneal_steps > 0, "loss.anneal_steps", config.loss.anneal_steps, "must be > 0")
    _validate_disentangling(config)
    _one_of(config, "optim.name", sorted(OPTIMIZERS))
    lr = config.optim.learning_rate
    _check(lr > 0, "optim.learning_rate", lr, "must be > 0")


def _validate_data_and_train(config: ml_collections.ConfigDict) -> None:
    from vae_jax.data import BINARIZE, DATASETS

    _one_of(config, "data.name", DATASETS)
    _one_of(config, "data.binarize", BINARIZE)
    _one_of(config, "data.source", ("auto", "local", "tfds"))
    local_dir = config.data.get("local_dir")
    _check(
        not local_dir or Path(local_dir).expanduser().is_dir(), "data.local_dir", local_dir,
        "no such directory; point it at the directory that holds the dataset's files",
    )  # fmt: skip
    texture = config.data.get("texture")
    _check(
        not texture or Path(texture).expanduser().is_file(), "data.texture", texture,
        "no such file; point it at an image (e.g. scream.jpg) or leave it unset for the procedural texture",
    )  # fmt: skip
    batch = config.train.batch_size
    _check(batch > 0, "train.batch_size", batch, "must be > 0")
    devices = jax.device_count()
    _check(batch % devices == 0, "train.batch_size", batch, f"must be a multiple of the {devices} devices")
    for name in ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        _check(config.train[name] > 0, f"train.{name}", config.train[name], "must be > 0")


def _validate_eval(config: ml_collections.ConfigDict) -> None:
    from vae_jax.evaluate.disentanglement import METRICS

    devices = jax.device_count()
    _check(config.eval.batch_size > 0, "eval.batch_size", config.eval.batch_size, "must be > 0")
    _check(
        config.eval.batch_size % devices == 0, "eval.batch_size", config.eval.batch_size,
        f"must be a multiple of the {devices} devices",
    )  # fmt: skip
    _one_of(config, "eval.split", ("test", "validation"))
    _check(config.eval.iwae_k >= 0, "eval.iwae_k", config.eval.iwae_k, "must be >= 0 (0 = off)")
    seed = config.eval.get("metric_seed", 0)
    _check(isinstance(seed, int) and seed >= 0, "eval.metric_seed", seed, "must be an integer >= 0")
    for metric in config.eval.disentanglement:
        _check(metric in METRICS, "eval.disentanglement", metric, f"each must be one of {sorted(METRICS)}")


def _validate_vae_options(config: ml_collections.ConfigDict) -> None:
    """The MLP activation, the prior, the second stochastic layer and the importance-weighted objective."""
    from vae_jax.models import ACTIVATIONS, PRIORS
    from vae_jax.objectives.importance import OBJECTIVES

    model, loss = config.model, config.loss
    _one_of(config, "model.activation", sorted(ACTIVATIONS))
    _one_of(config, "model.prior", PRIORS)
    if model.prior == "vamp":
        _check(model.num_pseudo_inputs > 0, "model.num_pseudo_inputs", model.num_pseudo_inputs, "must be > 0")
    if model.name == "vae2":
        _check(model.encoder == "mlp", "model.encoder", model.encoder, "model.name='vae2' is an MLP")
        _check(model.prior == "standard", "model.prior", model.prior, "'vae2' takes the standard prior")
        _check(model.bottom_latent_dim > 0, "model.bottom_latent_dim", model.bottom_latent_dim, "must be > 0")
    _one_of(config, "loss.objective", OBJECTIVES)
    for name in ("num_samples", "num_outer"):
        _check(loss[name] >= 1, f"loss.{name}", loss[name], "must be an integer >= 1")
    _check(0 <= loss.ciwae_beta <= 1, "loss.ciwae_beta", loss.ciwae_beta, "must be in [0, 1]")
    if loss.objective == "elbo" and loss.num_samples * loss.num_outer == 1:
        return  # The one-sample ELBO: every model, with beta, warm-up and capacity.
    _check(
        model.name in ("vae", "vae2"), "loss.objective", loss.objective,
        f"importance-weighted objectives train a VAE ('vae' or 'vae2'), not model.name={model.name!r}; "
        "use loss.objective='elbo' with loss.num_samples=1",
    )  # fmt: skip
    for name, off in (("beta", 1.0), ("beta_warmup", 0.0), ("gamma", 0.0)):
        _check(
            loss[name] == off, f"loss.{name}", loss[name],
            f"must be {off} with loss.objective={loss.objective!r} and {loss.num_samples * loss.num_outer} "
            "samples (these bounds have no KL weight); use the one-sample ELBO for beta-VAEs",
        )  # fmt: skip


def _validate_disentangling(config: ml_collections.ConfigDict) -> None:
    """The fields of loss.method (beta-TCVAE, DIP-VAE, FactorVAE) and of FactorVAE's discriminator."""
    from vae_jax.objectives.disentangle import TC_ESTIMATORS
    from vae_jax.train.losses import LOSS_METHODS
    from vae_jax.train.optimizer import OPTIMIZERS

    loss = config.loss
    _one_of(config, "loss.method", LOSS_METHODS)
    for name in ("tc_beta", "factor_gamma", "dip_lambda_od", "dip_lambda_d_factor"):
        _check(loss[name] >= 0, f"loss.{name}", loss[name], "must be >= 0")
    if loss.method == "vae":
        return
    _check(config.model.name == "vae", "loss.method", loss.method, "needs model.name='vae'")
    for name, neutral in (("beta", 1.0), ("gamma", 0.0), ("beta_warmup", 0.0)):
        _check(
            loss[name] == neutral, f"loss.{name}", loss[name],
            f"loss.method={loss.method!r} keeps the KL at weight 1: set it to {neutral} "
            "(beta and capacity belong to loss.method='vae')",
        )  # fmt: skip
    _one_of(config, "loss.tc_estimator", TC_ESTIMATORS)
    if loss.method == "beta_tcvae" and loss.tc_estimator != "minibatch":
        _check(
            loss.tc_dataset_size > 1, "loss.tc_dataset_size", loss.tc_dataset_size,
            f"the {loss.tc_estimator!r} estimator needs the training set's size N (> 1)",
        )  # fmt: skip
        _check(config.train.batch_size > 1, "train.batch_size", config.train.batch_size, "must be > 1")
    if loss.method == "factor_vae":
        hidden = tuple(config.model.disc_hidden)
        _check(all(w > 0 for w in hidden), "model.disc_hidden", hidden, "widths must be > 0")
        _one_of(config, "optim.discriminator.name", sorted(OPTIMIZERS))
        lr = config.optim.discriminator.learning_rate
        _check(lr > 0, "optim.discriminator.learning_rate", lr, "must be > 0")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: dict, new: dict) -> list[str]:
    """'field: saved -> new' for every field that differs (and may not change on resume)."""
    a, b = _flatten(saved), _flatten(new)
    diffs = []
    for key in sorted(a.keys() | b.keys()):
        if any(key == r or (r.endswith(".") and key.startswith(r)) for r in RESUMABLE_CHANGES):
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, list):
            va = tuple(va)
        if isinstance(vb, list):
            vb = tuple(vb)
        unset_new_field = None in (va, vb) and "<absent>" in (va, vb)  # added since, left unset
        if va != vb and not unset_new_field:
            diffs.append(f"{key}: {va!r} -> {vb!r}")
    return diffs


def check_resume_compatible(workdir: Path, config: ml_collections.ConfigDict, allow: bool) -> None:
    """Refuses to resume a workdir trained with a different config unless `allow`."""
    saved_path = Path(workdir) / "config.json"
    if not saved_path.exists() or not (Path(workdir) / "checkpoints").exists():
        return
    try:
        saved = json.loads(saved_path.read_text())
    except json.JSONDecodeError:
        return  # An unreadable record of the old config cannot be compared; the checkpoint decides.
    diffs = config_differences(saved, json.loads(config.to_json_best_effort()))
    if diffs and not allow:
        raise ConfigError(
            f"{workdir} holds a run with a different config ({'; '.join(diffs)}). "
            "Use another --workdir, or pass --allow_config_change to resume with the new values."
        )
