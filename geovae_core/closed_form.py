"""The gradient of K's VAE and AE written out, which ``train`` uses on the CPU instead of autograd.

K's models (Appendix A.1 and A.2: 784-h(tanh)-[mu, log sigma^2] or -z(tanh), and
z-h(tanh)-784 with a Bernoulli decoder) are small enough that autograd's bookkeeping costs
about as much as their arithmetic outside the matrix products. ``Gradient`` runs the model's
forward pass with the same operations (the loss terms computed by ``losses.loss_terms``)
and then the backward pass of AEVB's estimator by hand: the Bernoulli term's gradient
sigmoid(l) - x, the KL term's (AEVB Appendix B), and the reparameterisation z = mu + sigma * eps.
Terms and gradient are autograd's up to float rounding (tests/test_closed_form.py). An epoch of
K's VAE on two CPU cores takes about 15 % less time than with autograd, and on AMD's CPUs a
third less again from its matrix products (``linear``; benchmarks/bench_training.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import ExperimentConfig
from .losses import loss_terms


def covers(config: ExperimentConfig) -> bool:
    """Whether ``Gradient`` computes this config's gradient: K's tanh VAE (the terms ``recon``
    and optionally ``kl``) or AE (``recon`` alone) with a Bernoulli decoder, any term weights,
    nothing frozen, on the CPU."""
    names = [name for name, _ in config.loss_terms]
    allowed = {"sampled": {"recon", "kl"}, "point": {"recon"}}.get(config.latent, set())
    return (
        config.model == "kth"
        and config.device == "cpu"
        and config.activation == "tanh"
        and config.likelihood == "bernoulli"
        and "recon" in names
        and set(names) <= allowed
        and len(set(names)) == len(names)
        and not config.freeze
        and not config.pool_size
    )


class Gradient:
    """Called with a batch (x, y), returns its loss terms (as ``training.batch_terms``) and
    sets each parameter's ``.grad`` to the gradient of their weighted sum ``loss``."""

    def __init__(self, model: torch.nn.Module, config: ExperimentConfig):
        if not covers(config):
            raise ValueError(f"{config.label()}: no closed-form gradient for this config")
        self.config = config
        self.weights = dict(config.loss_terms)
        self.layers = (model.encoder[1][0], model.encoder[1][2], model.decoder[0], model.decoder[2])
        for layer in self.layers:
            for parameter in (layer.weight, layer.bias):
                parameter.grad = torch.zeros_like(parameter)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        hidden, head, decoder_hidden, decoder_out = self.layers
        pixels = x.flatten(1)
        # the forward pass, with the model's operations (Autoencoder.forward)
        h = torch.tanh(linear(pixels, hidden.weight, hidden.bias))
        encoded = linear(h, head.weight, head.bias)
        if self.config.latent == "sampled":
            mu, logvar = encoded.chunk(2, dim=1)
            std = torch.exp(0.5 * logvar)
            eps = torch.randn_like(mu)
            z = mu + std * eps
        else:
            mu, logvar = torch.tanh(encoded), None
            z = mu
        g = torch.tanh(linear(z, decoder_hidden.weight, decoder_hidden.bias))
        logits = linear(g, decoder_out.weight, decoder_out.bias)
        terms = loss_terms(x, y, {"mu": mu, "logvar": logvar, "z": z, "logits": logits}, self.config)
        # the backward pass of the batch mean; each layer's input gradient is taken before its own
        scale = 1.0 / len(x)
        d_logits = torch.sigmoid(logits).sub_(pixels).mul_(self.weights["recon"] * scale)
        d_g = _linear_backward(decoder_out, d_logits, g)
        d_z = _linear_backward(decoder_hidden, torch.ops.aten.tanh_backward(d_g, g), z)
        if self.config.latent == "sampled":
            d_mu, d_logvar = d_z, d_z * eps * (0.5 * std)
            if "kl" in self.weights:  # KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar)), AEVB App. B
                kl_scale = self.weights["kl"] * scale
                d_mu = d_mu + kl_scale * mu
                d_logvar = d_logvar + (0.5 * kl_scale) * (logvar.exp() - 1)
            d_encoded = torch.cat([d_mu, d_logvar], dim=1)
        else:
            d_encoded = torch.ops.aten.tanh_backward(d_z, mu)
        d_h = _linear_backward(head, d_encoded, h)
        _linear_backward(hidden, torch.ops.aten.tanh_backward(d_h, h), pixels, input_gradient=False)
        return terms


def _linear_backward(layer: torch.nn.Linear, d_out: torch.Tensor, inputs: torch.Tensor, input_gradient: bool = True):
    """Set the gradients of ``layer``'s weight and bias as its ``.grad``; return the gradient
    of its input (None with ``input_gradient=False``)."""
    layer.weight.grad = linear(d_out.t(), inputs.contiguous().t())
    torch.sum(d_out, dim=0, out=layer.bias.grad)
    return linear(d_out, layer.weight.t()) if input_gradient else None


@functools.cache
def _products_by_onednn() -> bool:
    """Whether ``linear`` takes oneDNN: on AMD's x86 CPUs, where MKL (torch's BLAS) runs its
    AVX2 code and oneDNN its AVX-512 code. On a Zen 5 core the batch's 100x784x500 product took
    410 us by MKL and 190 by oneDNN; on Intel's CPUs MKL was as fast or faster."""
    cpuinfo = Path("/proc/cpuinfo")
    return (
        torch.backends.mkldnn.is_available()
        and cpuinfo.exists()
        and "AuthenticAMD" in cpuinfo.read_text(errors="replace")
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight.T + bias, as ``F.linear`` (to float rounding), by oneDNN where MKL is slow."""
    if _products_by_onednn():
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)
