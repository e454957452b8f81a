"""The dSprites beta-VAE written plainly in PyTorch: the peer for the CPU step-time comparison.

Same function as `experiments/beta_vae.py`'s model: conv 32-32-64-64 (4x4, stride 2,
padding 1) + dense 256 -> 2 x 10, decoder dense 256 -> 1024 -> deconv 64-32-32-1,
Bernoulli likelihood, beta = 4, Adam 1e-4, batch 64.
"""

import torch
from torch import nn


class BetaVAE(nn.Module):
    def __init__(self, latent_dim: int = 10):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 2 * latent_dim),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(),
            nn.Unflatten(1, (64, 4, 4)),
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1),
        )  # fmt: skip

    def forward(self, x):
        h = self.encoder(x)
        mean, logvar = h[:, : self.latent_dim], h[:, self.latent_dim :]
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self.decoder(z), mean, logvar


def make_step(model: BetaVAE, beta: float = 4.0, lr: float = 1e-4):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    bce = nn.BCEWithLogitsLoss(reduction="none")

    def step(x):
        logits, mean, logvar = model(x)
        rec = bce(logits, x).flatten(1).sum(1)
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)
        loss = (rec + beta * kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step
