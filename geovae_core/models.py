"""Models built from a config by a small dispatch table (``ARCHITECTURES``)."""
from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(sizes, activation: str, final_activation: str | None = None) -> nn.Sequential:
    """Linear layers of the given sizes, ``activation`` between them, optionally one at the end."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        last = i == len(sizes) - 2
        if not last:
            layers.append(ACTIVATIONS[activation]())
        elif final_activation:
            layers.append(ACTIVATIONS[final_activation]())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """x -> encoder -> mu (and log sigma^2) -> z -> decoder -> pixel logits.

    ``variational``: the encoder emits [mu, log sigma^2] and the decoder receives
    z = mu + sigma * eps, eps ~ N(0, I) (AEVB's reparameterisation, eq. 10);
    otherwise z = mu. Decoder outputs are logits; ``decode`` applies the sigmoid
    that ends K's decoder (Appendix A), so BCE can be computed stably from logits.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 image_shape: tuple, variational: bool):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim, self.image_shape, self.variational = latent_dim, tuple(image_shape), variational

    def encode(self, x: torch.Tensor):
        """Return (mu, logvar); logvar is None for a deterministic encoder."""
        h = self.encoder(x)
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar
        return h, None

    def forward(self, x: torch.Tensor) -> dict:
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.variational else mu
        return {"mu": mu, "logvar": logvar, "z": z, "logits": self.decoder(z)}

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latent codes z [B, latent_dim]."""
        return torch.sigmoid(self.decoder(z)).view(-1, *self.image_shape)


class Classifier(nn.Module):
    """An MLP classifier; its penultimate activations are the features of the sample-quality metric."""

    def __init__(self, features: nn.Module, n_features: int, n_classes: int):
        super().__init__()
        self.features, self.head = features, nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> dict:
        features = self.features(x)
        return {"features": features, "class_logits": self.head(features)}


def _kth_vae(config, image_shape):
    """K, Appendix A.1: 784-500(tanh)-[mu, log sigma^2] and z-500(tanh)-784(sigmoid)."""
    d = math.prod(image_shape)
    h = config.hidden_dim
    encoder = nn.Sequential(nn.Flatten(), mlp([d, h, 2 * config.latent_dim], config.activation))
    decoder = mlp([config.latent_dim, h, d], config.activation)
    return Autoencoder(encoder, decoder, config.latent_dim, image_shape, variational=True)


def _kth_ae(config, image_shape):
    """K, Appendix A.2: 784-500(tanh)-z(tanh) and z-500(tanh)-784(sigmoid)."""
    d = math.prod(image_shape)
    h = config.hidden_dim
    encoder = nn.Sequential(nn.Flatten(), mlp([d, h, config.latent_dim], config.activation, "tanh"))
    decoder = mlp([config.latent_dim, h, d], config.activation)
    return Autoencoder(encoder, decoder, config.latent_dim, image_shape, variational=False)


def _mlp_classifier(config, image_shape):
    """The feature network of the sample-quality metric: 784-hidden-latent (ReLU), linear head.
    Its "latent" is the penultimate feature layer."""
    d = math.prod(image_shape)
    features = nn.Sequential(nn.Flatten(), mlp([d, config.hidden_dim, config.latent_dim], "relu", "relu"))
    return Classifier(features, config.latent_dim, n_classes=10)


ARCHITECTURES = {"kth_vae": _kth_vae, "kth_ae": _kth_ae, "mlp_classifier": _mlp_classifier}


def build_model(config, image_shape: tuple) -> nn.Module:
    """The model ``config.model`` names, initialised N(0, init_std) when ``init_std`` is set."""
    model = ARCHITECTURES[config.model](config, image_shape)
    if config.init_std is not None:
        for parameter in model.parameters():
            nn.init.normal_(parameter, 0.0, config.init_std)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
