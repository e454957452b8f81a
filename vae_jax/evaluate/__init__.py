"""What a trained model is measured by, as functions of a model and data (no training here).

inference         the one batched, jitted path to a model: encode, decode, reconstruct, sample
likelihood        the importance-weighted bound L_k and active units
disentanglement   the study's metrics on ground-truth-factor data (`compute_metrics`), with
                  modularity and unsupervised (the study's other scores), protocol (every
                  metric's defaults, each with its disentanglement_lib source), codes (how codes
                  of sampled factors are drawn) and information (MI, entropy)
ground_truth      a model as the metrics' representation; factor labels of the latents
anomaly           AUROC of held-out-class detection by likelihood scores
codebook          a VQ-VAE's code usage and perplexity over a whole set
baselines         PCA / ICA / pixel representations for the metrics
pictures          the grids written to a workdir's images/
study             sweep workdirs joined into one study table, box plots and rank correlations
sweep_rows        a sweep's member rows read back, the workdirs of its slices joined
"""
