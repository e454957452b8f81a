"""Shared config pieces: the base config every experiment starts from, and the presets.

Presets (`--config=experiments/<name>.py:<preset>`) change the scale of a run,
never its dataset or model: `smoke` runs in seconds (tests), `quick` in a few
minutes on a laptop CPU with meaningful pictures, and no preset is the published
setup sized for an accelerator. `sweep` turns on the config's own sweep
(`config.sweep.spec`) and combines with a scale: `:sweep`, `:quick,sweep`, `:smoke,sweep`.
"""

import ml_collections
from ml_collections import config_dict

SCALES = ("smoke", "quick")
PRESETS = (*SCALES, "sweep")  # combine with a comma: `:smoke,sweep`


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by all experiments; each config file changes a few fields."""
    c = ml_collections.ConfigDict()
    c.name = "experiment"  # set by each config file; names the default workdir runs/<name>
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "fashion_mnist"
    c.data.source = "auto"  # 'auto': local files if present, else the TFDS catalog | 'local' | 'tfds'
    # The dataset's original files: the four idx files; 3dshapes.h5, smallnorb-*.mat, Cars3D's *.mat,
    # mpi3d_*.npz (vae_jax/data/factor_files.py).
    c.data.local_dir = config_dict.placeholder(str)
    c.data.texture = config_dict.placeholder(str)  # textured_dsprites: an image (unset: procedural)
    c.data.data_dir = "~/tensorflow_datasets"  # where TFDS keeps prepared datasets
    c.data.binarize = "none"  # 'none' | 'threshold' | 'dynamic' (resampled at every use)
    c.data.validation_size = 0  # examples carved from the end of train for eval.split='validation'
    c.data.max_train_examples = 0  # 0 = all
    c.data.on_device = True  # in-memory datasets: keep the training set on the device, gather in-step
    c.data.held_out_class = -1  # >= 0: drop this class from training and report its anomaly AUROC

    c.model = ml_collections.ConfigDict()
    c.model.name = "vae"  # 'ae' | 'vae' | 'vae2' (two stochastic layers) | 'vqvae'
    c.model.encoder = "mlp"  # 'mlp' | 'conv' | 'recurrent'
    c.model.decoder = ""  # '' = same kind as the encoder
    c.model.latent_dim = 10
    c.model.hidden = (512, 256)  # MLP widths (the decoder mirrors them); for 'vae2' the top layer's
    c.model.activation = "relu"  # MLP hidden activation: 'relu' | 'tanh' (Burda et al. 2016)
    c.model.prior = "standard"  # VAE prior p(z): 'standard' N(0, I) | 'vamp' (Tomczak & Welling 2018)
    c.model.num_pseudo_inputs = 500  # K pseudo-inputs of the VampPrior
    c.model.bottom_hidden = (100, 100)  # 'vae2' (two stochastic layers): MLP widths around z1
    c.model.bottom_latent_dim = 100  # 'vae2': size of z1; model.latent_dim is the top layer z2
    c.model.channels = (32, 64)  # conv channels, one stride-2 layer each
    c.model.kernel = 4
    # 4x4 stride-2 layers: 'onednn' (CPU, built by `python -m vae_jax.ops.native`) | 'matmul' (CPU) | 'xla'
    # | 'auto' (onednn, else matmul, on CPU; xla on GPU/TPU).
    c.model.conv_impl = "auto"
    # The networks' computation dtype: 'float32' | 'bfloat16' (flax's convention: parameters, optimizer
    # state, VQ codebooks, every density, loss and metric stay float32; docs/performance.md).
    c.model.dtype = "float32"
    c.model.dense = 256
    c.model.rnn_hidden = 256
    c.model.disc_hidden = (1000,) * 6  # FactorVAE's discriminator MLP (dlib's fc_discriminator)
    c.model.cell = "lstm"  # 'lstm' | 'gru'
    c.model.vq = ml_collections.ConfigDict()
    c.model.vq.num_codes = 512
    c.model.vq.code_dim = 64
    c.model.vq.num_latents = 8  # codes per example for MLP/recurrent encoders
    c.model.vq.ema = False
    c.model.vq.decay = 0.99
    c.model.vq.epsilon = 1e-5
    c.model.vq.restart_threshold = 0.0  # EMA cluster size below which a code restarts; 0 = off
    # 'vq' (one codebook) | 'fsq' (finite scalar quantization, Mentzer et al. 2023: no codebook)
    # | 'rvq' (residual VQ, Zeghidour et al. 2021: num_levels codebooks on successive residuals)
    c.model.vq.kind = "vq"
    # Gradient to the encoder: 'straight_through' (van den Oord et al. 2017) | 'rotation' (Fifty et
    # al. 2024); the forward value is the same.
    c.model.vq.estimator = "straight_through"
    c.model.vq.kmeans_init = 0  # Lloyd steps seeding the codebook from the first train batch; 0 = off
    c.model.vq.cosine = False  # l2-normalised codes and inputs (match by cosine similarity)
    c.model.vq.encoder_dim = 0  # encoder channels per position; > code_dim adds projections; 0 = code_dim
    c.model.vq.fsq_levels = ()  # FSQ levels per channel, e.g. (8, 5, 5, 5); () = the paper's for num_codes
    c.model.vq.num_levels = 4  # RVQ: number of residual quantizers
    c.model.vq.dropout = False  # RVQ: quantizer dropout (each example keeps its first n ~ U{1..N} levels)

    c.loss = ml_collections.ConfigDict()
    c.loss.likelihood = "bernoulli"  # 'bernoulli' (logits) | 'gaussian' (mean)
    c.loss.log_scale = 0.0  # Gaussian log std (initial value if learned)
    c.loss.learn_scale = False
    c.loss.beta = 1.0  # KL weight; 1.0 = the ELBO
    c.loss.beta_warmup = 0.0  # steps over which the KL weight rises from 0 to beta; 0 = off
    c.loss.gamma = 0.0  # capacity weight of Burgess et al. 2018; 0 = off
    c.loss.c_max = 0.0  # final capacity in nats
    c.loss.anneal_steps = 1.0  # steps over which C rises from 0 to c_max
    c.loss.commitment_cost = 0.25
    # VAE objective (vae_jax/objectives/importance.py): 'elbo' (mean over the samples; Burda's "VAE k>1") |
    # 'iwae' (L_{MK}) | 'miwae' (M groups of K) | 'piwae' (IWAE_{MK} for p, MIWAE_{M,K} for q) | 'ciwae'.
    c.loss.objective = "elbo"
    c.loss.num_samples = 1  # K importance samples per group (structural: a separate program per K)
    c.loss.num_outer = 1  # M groups of K samples ('miwae', 'piwae'); the others use all M * K
    c.loss.ciwae_beta = 0.5  # CIWAE's mix beta * ELBO + (1 - beta) * IWAE, in [0, 1] (sweepable)
    # The Gaussian VAE's objective: 'vae' (beta-VAE; with gamma > 0 the capacity-annealed VAE) |
    # 'beta_tcvae' | 'dip_vae_i' | 'dip_vae_ii' | 'factor_vae' (vae_jax/objectives/disentangle.py).
    # The other methods keep the KL at weight 1: they need beta = 1 and gamma = 0.
    c.loss.method = "vae"
    c.loss.tc_beta = 1.0  # beta-TCVAE's TC weight; 1.0 = the VAE
    c.loss.tc_estimator = "minibatch"  # 'minibatch' (dlib's) | 'mws' | 'mss' (Chen et al. 2018)
    c.loss.tc_dataset_size = 0  # N of the 'mws' / 'mss' estimators: the training set's size
    c.loss.factor_gamma = 0.0  # FactorVAE's TC weight (not loss.gamma, the capacity weight)
    c.loss.dip_lambda_od = 0.0  # DIP-VAE's off-diagonal covariance weight
    c.loss.dip_lambda_d_factor = 10.0  # lambda_d = factor * lambda_od: dlib's 10 for I, 1 for II

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adam"
    c.optim.learning_rate = 1e-3
    c.optim.grad_clip = 0.0  # 0 = no clipping
    # 'constant' | 'burda': Burda et al.'s stages i = 0..num_stages-1 of 3^i * stage0_steps steps,
    # at learning_rate * 10^(-i/7) (optimizer.burda_schedule).
    c.optim.schedule = "constant"
    c.optim.stage0_steps = 3000  # 'burda': one pass over 60,000 images in batches of 20
    c.optim.num_stages = 8
    # FactorVAE's discriminator optimizer: dlib's Adam(1e-4, b1=0.5, b2=0.9, eps=1e-8).
    c.optim.discriminator = ml_collections.ConfigDict()
    c.optim.discriminator.name = "adam"
    c.optim.discriminator.learning_rate = 1e-4
    c.optim.discriminator.kwargs = {"b1": 0.5, "b2": 0.9, "eps": 1e-8}
    c.optim.discriminator.grad_clip = 0.0

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 64
    c.train.num_steps = 10_000
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 5000
    c.eval.batch_size = 500
    c.eval.num_examples = 0  # 0 = the whole eval split (ground-truth data: required)
    c.eval.split = "test"  # 'test' | 'validation'
    c.eval.disentanglement = ()  # metric names, for datasets with ground-truth factors
    # The metrics' own random draws (which factors, which pairs): the study fixes them at 0 for every
    # model (disentanglement_lib's `evaluation.random_seed`), so its scores differ by the model only.
    c.eval.metric_seed = 0
    c.eval.iwae_k = 100  # importance samples of the final L_k bound (VAEs); 0 = off
    c.eval.iwae_num_examples = 0  # eval examples for L_k; 0 = all

    c.sweep = ml_collections.ConfigDict()
    # e.g. 'loss.beta=1,4,16 * seed=0,1,2' (product) or 'loss.gamma=100,1000 | loss.c_max=10,25' (zip);
    # empty = a single run. See vae_jax/train/sweep.py.
    c.sweep.spec = ""
    c.sweep.vectorize = "auto"  # 'vmap' | 'map' | 'auto' (map on CPU, vmap on accelerators)
    # "I/N": members I, I+N, ... only (--sweep_slice); experiments.study joins the slices
    c.sweep.slice = config_dict.placeholder(str)
    return c


def parse_preset(arg: str | None, extra_scales: tuple[str, ...] = ()) -> tuple[str | None, bool]:
    """'quick,sweep' -> ('quick', True); raises ValueError for unknown words.

    extra_scales: scales a config file defines itself (e.g. vae.py's `cpu_hour`).
    """
    words = [w for w in (arg or "").split(",") if w]
    for w in words:
        if w not in (*PRESETS, *extra_scales):
            valid = [*PRESETS, *extra_scales]
            raise ValueError(f"unknown preset {w!r}; valid: {valid}, comma-separated, or none")
    scales = [w for w in words if w in (*SCALES, *extra_scales)]
    if len(scales) > 1:
        raise ValueError(f"preset {arg!r} names two scales; choose one of {list(SCALES)}")
    return (scales[0] if scales else None), "sweep" in words


def apply_preset(
    c: ml_collections.ConfigDict,
    name: str,
    arg: str | None,
    quick_steps: int,
    sweep: str = "",
    extra_scales: tuple[str, ...] = (),
) -> ml_collections.ConfigDict:
    """Names the run `name[_preset]`, shrinks c for `smoke` or `quick`, sets the sweep for `sweep`.

    A scale in extra_scales is the config file's own: only named here, set by the caller.
    """  # fmt: skip
    preset, with_sweep = parse_preset(arg, extra_scales)
    c.name = "_".join([name, *[w for w in (arg or "").split(",") if w]])
    if with_sweep:
        if not sweep:
            raise ValueError(f"{name} defines no sweep; set --config.sweep.spec instead")
        c.sweep.spec = sweep
    if preset == "smoke":
        c.train.num_steps = 12
        c.train.batch_size = 16
        c.train.log_every = 4
        c.train.checkpoint_every = 8
        c.eval.every = 10_000
        c.eval.batch_size = 64
        c.eval.num_examples = 128
        c.data.max_train_examples = 512
        c.eval.iwae_k = 10
    elif preset == "quick":
        c.train.num_steps = quick_steps
        c.train.log_every = 100
        c.train.checkpoint_every = 1000
        c.eval.every = max(quick_steps // 2, 1)
        c.eval.num_examples = 2000
        c.eval.iwae_num_examples = 500
    return c


def use_burda_schedule(c: ml_collections.ConfigDict, stage0_steps: int, num_stages: int = 8) -> None:
    """Burda et al. 2016's optimization: Adam(0.9, 0.999, eps 1e-4), stages i = 0..num_stages-1 of
    3^i * stage0_steps steps at 1e-3 * 10^(-i/7); train.num_steps covers all the stages."""
    c.optim.name = "adam"
    c.optim.learning_rate = 1e-3
    c.optim.kwargs = ml_collections.ConfigDict({"b1": 0.9, "b2": 0.999, "eps": 1e-4})
    c.optim.schedule = "burda"
    c.optim.stage0_steps = stage0_steps
    c.optim.num_stages = num_stages
    c.train.num_steps = stage0_steps * (3**num_stages - 1) // 2  # sum of 3^i, i < num_stages
