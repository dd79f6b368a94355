"""Loss terms, each per sample (shape [B]) or, for R §3.1's centre terms, per centre
(shape [K]); a config weights their means and sums them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample: -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    (AEVB Appendix B; K eq. 2)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) of a Bernoulli decoder, i.e. the BCE K uses (also on continuous MNIST).

    Computed as relu(l) - x l + log(1 + exp(-|l|)): the value of
    ``binary_cross_entropy_with_logits`` (to ~1e-6 per pixel), about twice as fast on a
    CPU, where that kernel's log1p is not vectorised."""
    per_pixel = torch.relu(logits) - x * logits + torch.log(1 + torch.exp(-logits.abs()))
    return per_pixel.sum(dim=1)


def gaussian_nll(logits: torch.Tensor, x: torch.Tensor, std: float) -> torch.Tensor:
    """-log N(x; sigmoid(logits), std^2 I): the MSE loss with a fixed decoder std, in nats."""
    squared = (x - torch.sigmoid(logits)).pow(2).sum(dim=1)
    return 0.5 * squared / std**2 + x.shape[1] * (math.log(std) + 0.5 * math.log(2 * math.pi))


def squared_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """||x - x_hat||^2 per sample, P's reconstruction loss (§1)."""
    return (x - torch.sigmoid(logits)).pow(2).sum(dim=1)


def centering(mu: torch.Tensor) -> torch.Tensor:
    """||mu||^2, P §2.2's centering term."""
    return mu.pow(2).sum(dim=1)


def asymmetric_spread(logvar: torch.Tensor) -> torch.Tensor:
    """sum_i ReLU(-log Var_i), P §2.2's asymmetric expansion: penalise only Var_i < 1."""
    return torch.relu(-logvar).sum(dim=1)


def symmetric_spread(logvar: torch.Tensor) -> torch.Tensor:
    """sum_i log(1 + (log Var_i)^2), P §2.2's symmetric stabilisation around Var_i = 1."""
    return torch.log1p(logvar.pow(2)).sum(dim=1)


RECONSTRUCTIONS = {
    "bernoulli": lambda logits, x, config: bernoulli_nll(logits, x),
    "gaussian": lambda logits, x, config: gaussian_nll(logits, x, config.decoder_std),
    "mse": lambda logits, x, config: squared_error(logits, x),
}
LIKELIHOODS = tuple(RECONSTRUCTIONS)


def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor, config) -> torch.Tensor:
    """The reconstruction term the config's ``likelihood`` names; x is flattened to [B, D].
    (For ``mse`` it is a squared error, not a normalised likelihood.)"""
    return RECONSTRUCTIONS[config.likelihood](logits, x.flatten(1), config)


LOSS_TERMS = {
    "recon": lambda x, y, out, config: reconstruction_nll(out["logits"], x, config),
    "kl": lambda x, y, out, config: kl_to_standard_normal(out["mu"], out["logvar"]),
    "centering": lambda x, y, out, config: centering(out["mu"]),
    "spread_asym": lambda x, y, out, config: asymmetric_spread(out["logvar"]),
    "spread_sym": lambda x, y, out, config: symmetric_spread(out["logvar"]),
    "pull": lambda x, y, out, config: out["pull"],
    "centre_pull": lambda x, y, out, config: out["centre_pull"],
    "centre_recon": lambda x, y, out, config: reconstruction_nll(out["centre_logits"], out["matched"], config),
    "xent": lambda x, y, out, config: F.cross_entropy(out["class_logits"], y, reduction="none"),
}


def loss_terms(x, y, out, config) -> dict:
    """Batch means of the config's terms, and ``loss``: their weighted sum (a term of weight 1
    is added as it is: the same number, one multiplication and autograd node fewer)."""
    terms = {name: LOSS_TERMS[name](x, y, out, config).mean() for name, _ in config.loss_terms}
    loss = None
    for name, weight in config.loss_terms:
        term = terms[name] if weight == 1 else weight * terms[name]
        loss = term if loss is None else loss + term
    terms["loss"] = loss
    return terms
