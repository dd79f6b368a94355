"""Models built from a config by a small dispatch table (``ARCHITECTURES``).

Every autoencoder is an ``Autoencoder`` around an encoder and a decoder made of the shared
blocks below: ``mlp`` for 28 x 28 x 1, ``conv_encoder``/``conv_decoder`` (stride-2
convolutions and transposed convolutions) for 28 x 28, 32 x 32 and 64 x 64 images.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .codebook import ClusterCentres, Codebook, as_vectors

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
LATENTS = ("sampled", "mean", "point", "codebook", "quantized", "centres")


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


def _downsampling(in_channels: int, channels: tuple, activation: str) -> list:
    """Stride-2 4x4 convolutions, each halving the side, with an activation after each."""
    layers, previous = [], in_channels
    for width in channels:
        layers += [nn.Conv2d(previous, width, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
        previous = width
    return layers


def _upsampling(channels: tuple, out_channels: int, activation: str) -> list:
    """The mirror of ``_downsampling``: stride-2 transposed convolutions back to
    ``out_channels`` pixel logits, flattened."""
    widths = list(reversed(channels))
    layers = []
    for width_in, width_out in zip(widths, widths[1:]):
        layers += [nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
    return layers + [nn.ConvTranspose2d(widths[-1], out_channels, 4, stride=2, padding=1), nn.Flatten()]


def conv_encoder(image_shape: tuple, channels: tuple, out_features: int, activation: str) -> nn.Sequential:
    """Stride-2 4x4 convolutions (each halves the side), then a linear layer to ``out_features``."""
    c, h, w = image_shape
    side_h, side_w = h >> len(channels), w >> len(channels)
    return nn.Sequential(
        *_downsampling(c, channels, activation), nn.Flatten(), nn.Linear(channels[-1] * side_h * side_w, out_features)
    )


def conv_decoder(latent_dim: int, channels: tuple, image_shape: tuple, activation: str) -> nn.Sequential:
    """The mirror of ``conv_encoder``: linear, then stride-2 transposed convolutions to pixel logits."""
    c, h, w = image_shape
    side_h, side_w = h >> len(channels), w >> len(channels)
    return nn.Sequential(
        nn.Linear(latent_dim, channels[-1] * side_h * side_w),
        ACTIVATIONS[activation](),
        nn.Unflatten(1, (channels[-1], side_h, side_w)),
        *_upsampling(channels, c, activation),
    )


class Autoencoder(nn.Module):
    """x -> encoder -> mu (and log sigma^2) -> z -> decoder -> pixel logits.

    ``latent`` (see ``LATENTS``): ``sampled``, the encoder emits [mu, log sigma^2] and the
    decoder receives z = mu + sigma * eps, eps ~ N(0, I) (AEVB's reparameterisation, eq. 10);
    ``mean``, the same encoder but the decoder receives mu (P §2.1's "AE with KL");
    ``point``, the encoder emits z = mu only (a plain AE); ``codebook``, as ``point`` with mu
    pulled toward its nearest code of a ``Codebook`` (P §3.2, path A: the decoder receives mu);
    ``quantized``, the decoder receives the nearest code instead, with the straight-through
    gradient (VQ-VAE, path B); ``centres``, as ``point`` with R §3.1's ``ClusterCentres``
    each pulled together with its nearest encoding in a matching pool. Decoder outputs are
    logits; ``decode`` applies the final sigmoid, so BCE can be computed stably from logits.
    A ``head`` (R §2.3's classifier) maps mu to class logits.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int,
        image_shape: tuple,
        latent: str,
        codebook: Codebook | ClusterCentres | None = None,
        head: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder, self.decoder, self.codebook, self.head = encoder, decoder, codebook, head
        self.latent_dim, self.image_shape, self.latent = latent_dim, tuple(image_shape), latent

    def encode(self, x: torch.Tensor):
        """Return (mu, logvar); logvar is None for an encoder without a variance head."""
        h = self.encoder(x)
        if self.latent not in ("sampled", "mean"):
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor, pool: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> dict:
        """``pool`` is R §3.1's matching pool of M images (``centres`` only; without one, the
        batch itself is the pool). The centres' outputs add ``matched`` (the images x*_k) and
        ``centre_logits`` (D(v_k), for R's optional decoder term). ``noise`` is the eps of the
        reparameterisation (``sampled``; drawn from torch's generator when None)."""
        if pool is not None and self.latent != "centres":
            raise ValueError(f"a matching pool needs the 'centres' latent, not {self.latent!r}")
        mu, logvar = self.encode(x if pool is None else torch.cat([x, pool]))
        pool_codes = mu
        if pool is not None:
            mu, pool_codes = mu[: len(x)], mu[len(x) :]
        out = {"mu": mu, "logvar": logvar}
        if self.latent == "centres":
            out.update(self.codebook(pool_codes))
            out["matched"] = (x if pool is None else pool)[out["centre_indices"]]
            out["centre_logits"] = self.decoder(self.codebook.codes)
        elif self.codebook is not None:
            out.update(self.codebook(mu))
        if self.head is not None:
            out["class_logits"] = self.head(mu)
        if self.latent == "sampled":
            z = mu + torch.exp(0.5 * logvar) * (torch.randn_like(mu) if noise is None else noise)
        elif self.latent == "quantized":
            z = mu + (out["quantized"] - mu).detach()
        else:
            z = mu
        return {**out, "z": z, "logits": self.decoder(z)}

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latent codes z [B, latent_dim]."""
        return torch.sigmoid(self.decoder(z)).view(-1, *self.image_shape)

    @torch.no_grad()
    def initialise_codebook(self, images: torch.Tensor, generator: torch.Generator, chunk: int = 1024) -> None:
        """Start a ``Codebook`` at K distinct encodings of randomly chosen ``images``, encoding
        more of them until K distinct vectors are found (a no-op without one, or once set)."""
        if not isinstance(self.codebook, Codebook) or bool(self.codebook.initialised):
            return
        order = torch.randperm(len(images), generator=generator).to(images.device)
        vectors = []
        for start in range(0, len(images), chunk):
            vectors.append(as_vectors(self.encode(images[order[start : start + chunk]])[0]))
            if len(torch.unique(torch.cat(vectors), dim=0)) >= self.codebook.size:
                break
        self.codebook.initialise(torch.cat(vectors), generator)


class Classifier(nn.Module):
    """An MLP classifier; its penultimate activations are the features of the sample-quality metric."""

    def __init__(self, features: nn.Module, n_features: int, n_classes: int):
        super().__init__()
        self.features, self.head = features, nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> dict:
        features = self.features(x)
        return {"features": features, "class_logits": self.head(features)}


def _encoder_outputs(config) -> int:
    return 2 * config.latent_dim if config.latent in ("sampled", "mean") else config.latent_dim


def _codebook(config) -> Codebook | ClusterCentres | None:
    if config.latent in ("codebook", "quantized"):
        return Codebook(config.codebook_size, config.latent_dim, config.codebook_decay)
    if config.latent == "centres":
        return ClusterCentres(config.codebook_size, config.latent_dim)
    return None


def _shallow_mlp(config, image_shape):
    """One hidden layer each way (K, Appendix A; AEVB §5): 784-500(tanh)-[mu, log sigma^2]
    (A.1, VAE) or 784-500(tanh)-z(tanh) (A.2, AE: ``latent="point"``), and z-500(tanh)-784(sigmoid)."""
    d, h = math.prod(image_shape), config.hidden_dim
    latent_activation = "tanh" if config.latent == "point" else None
    encoder = nn.Sequential(nn.Flatten(), mlp([d, h, _encoder_outputs(config)], config.activation, latent_activation))
    decoder = mlp([config.latent_dim, h, d], config.activation)
    return Autoencoder(encoder, decoder, config.latent_dim, image_shape, config.latent)


def _mlp(config, image_shape, head: nn.Module | None = None):
    """A feed-forward autoencoder: D-widths...-latent and its mirror (P's "FFN")."""
    d = math.prod(image_shape)
    encoder = nn.Sequential(nn.Flatten(), mlp([d, *config.widths, _encoder_outputs(config)], config.activation))
    decoder = mlp([config.latent_dim, *reversed(config.widths), d], config.activation)
    return Autoencoder(encoder, decoder, config.latent_dim, image_shape, config.latent, _codebook(config), head)


def _classifier_ae(config, image_shape):
    """R §2.3: an MNIST classifier whose middle section (D-widths...-latent, the ``mlp``
    encoder) gives the latent, an activation and a linear layer to 10 classes on top, and an
    ``mlp`` decoder. Trained on ``xent`` it is the classifier; then, frozen, its features
    are decoded (``freeze=("encoder", "head")``, ``recon``)."""
    head = nn.Sequential(ACTIVATIONS[config.activation](), nn.Linear(config.latent_dim, 10))
    return _mlp(config, image_shape, head)


def _conv(config, image_shape):
    """A convolutional encoder and a transposed-convolution decoder (P Figs 1, 3; CIFAR's CNN)."""
    encoder = conv_encoder(image_shape, config.widths, _encoder_outputs(config), config.activation)
    decoder = conv_decoder(config.latent_dim, config.widths, image_shape, config.activation)
    return Autoencoder(encoder, decoder, config.latent_dim, image_shape, config.latent, _codebook(config))


class Residual(nn.Module):
    """x + block(x)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def residual_mlp(n_in: int, width: int, blocks: int, n_out: int, activation: str) -> nn.Sequential:
    """Linear to ``width``, ``blocks`` residual blocks (two linear layers each), linear out."""
    act = ACTIVATIONS[activation]
    layers = [nn.Linear(n_in, width), act()]
    for _ in range(blocks):
        layers += [Residual(nn.Sequential(nn.Linear(width, width), act(), nn.Linear(width, width))), act()]
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def _resmlp(config, image_shape):
    """P App. A.4.2's deeper encoder and decoder with residual connections: ``widths`` gives
    the width (its first entry) and the number of residual blocks (its length)."""
    d, width, blocks = math.prod(image_shape), config.widths[0], len(config.widths)
    encoder = nn.Sequential(nn.Flatten(), residual_mlp(d, width, blocks, _encoder_outputs(config), config.activation))
    decoder = residual_mlp(config.latent_dim, width, blocks, d, config.activation)
    return Autoencoder(encoder, decoder, config.latent_dim, image_shape, config.latent, _codebook(config))


def _conv_map(config, image_shape):
    """P §3.5 / App. A.5's VQ-AE: a convolutional encoder whose output is a feature map
    [B, latent_dim, h, w] (``map_shape``; VQ-VAE's convention, one code vector per position),
    and a decoder that maps it back through transposed convolutions."""
    c, h, w = image_shape
    side_h, side_w = h >> len(config.widths), w >> len(config.widths)
    encoder = nn.Sequential(
        *_downsampling(c, config.widths, config.activation),
        nn.Conv2d(config.widths[-1], config.latent_dim, 1),
        nn.AdaptiveAvgPool2d(tuple(config.map_shape)),
    )
    decoder = nn.Sequential(
        nn.Conv2d(config.latent_dim, config.widths[-1], 1),
        ACTIVATIONS[config.activation](),
        nn.Upsample(size=(side_h, side_w)),
        *_upsampling(config.widths, c, config.activation),
    )
    return Autoencoder(encoder, decoder, config.latent_dim, image_shape, config.latent, _codebook(config))


def _mlp_classifier(config, image_shape):
    """The feature network of the sample-quality metric: D-hidden-latent (ReLU), linear head.
    Its "latent" is the penultimate feature layer."""
    d = math.prod(image_shape)
    features = nn.Sequential(nn.Flatten(), mlp([d, config.hidden_dim, config.latent_dim], "relu", "relu"))
    return Classifier(features, config.latent_dim, n_classes=10)


ARCHITECTURES = {
    "shallow_mlp": _shallow_mlp,
    "mlp": _mlp,
    "conv": _conv,
    "resmlp": _resmlp,
    "conv_map": _conv_map,
    "mlp_classifier": _mlp_classifier,
    "classifier_ae": _classifier_ae,
}


def build_model(config, image_shape: tuple, mean_image: torch.Tensor | None = None) -> nn.Module:
    """The model ``config.model`` names, initialised N(0, init_std) when ``init_std`` is set; with
    ``config.output_bias_at_mean``, a model about to train (given its training images' ``mean_image``)
    starts its decoder's output at that image (its bias at the image's logit)."""
    model = ARCHITECTURES[config.model](config, image_shape)
    if config.init_std is not None:
        for parameter in model.parameters():
            nn.init.normal_(parameter, 0.0, config.init_std)
    if config.output_bias_at_mean and mean_image is not None:
        output = model.decoder[-1]
        if not isinstance(output, nn.Linear):
            raise ValueError(f"{config.model}: output_bias_at_mean needs a decoder that ends in a linear layer")
        with torch.no_grad():
            output.bias.copy_(torch.logit(mean_image.flatten().clamp(1e-4, 1 - 1e-4)))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
