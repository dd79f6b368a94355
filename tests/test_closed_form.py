"""K's gradient written out (closed_form.py) is autograd's, up to float rounding."""

from __future__ import annotations

import pytest
import torch

from geovae_core import ExperimentConfig, closed_form, train
from geovae_core.closed_form import Gradient, covers, linear
from geovae_core.data import experiment_split
from geovae_core.models import build_model
from geovae_core.training import gradient_function, make_optimizer

VAE = ExperimentConfig(model="kth", latent_dim=20, lr=0.02, weight_decay=1 / 60000)
CASES = {
    "VAE z=20": VAE,
    "VAE, weighted terms in another order": VAE.replace(latent_dim=5, loss_terms=(("kl", 0.5), ("recon", 2.0))),
    "VAE without KL": VAE.replace(latent_dim=3, loss_terms=(("recon", 1.0),)),
    "AE z=3 (tanh latent)": VAE.replace(latent="point", latent_dim=3, loss_terms=(("recon", 1.0),)),
    "VAE on binarised MNIST": VAE.replace(binarize=True, train_size=200, test_size=0),
}


def _batch(config: ExperimentConfig) -> torch.Tensor:
    x_train = experiment_split(config.replace(train_size=200, test_size=0))[0]
    return x_train[:100]


def _autograd(model, config, x):
    """The batch's terms and gradient by autograd, as ``train`` takes them with ``autograd_only``."""
    optimizer = make_optimizer(config, model.parameters())
    terms = gradient_function(model, config, None, None, optimizer, use_closed_form=False)(x, None)
    return {name: value.detach() for name, value in terms.items()}, {
        name: p.grad.clone() for name, p in model.named_parameters()
    }


@pytest.mark.parametrize("init_std", [0.01, 0.1])
@pytest.mark.parametrize("name", list(CASES))
def test_the_closed_form_gives_autograd_s_terms_and_gradient_to_float_rounding(name, init_std):
    config = CASES[name].replace(init_std=init_std)
    torch.manual_seed(3)
    model = build_model(config, (1, 28, 28))
    x = _batch(config)
    torch.manual_seed(7)  # the same eps for both
    terms, gradient = _autograd(model, config, x)
    torch.manual_seed(7)
    closed_terms = Gradient(model, config)(x, None)
    assert list(closed_terms) == list(terms)
    for term, value in terms.items():
        assert float(closed_terms[term]) == pytest.approx(float(value), rel=1e-5, abs=1e-7), term
    for parameter_name, parameter in model.named_parameters():
        reference = gradient[parameter_name]
        scale = float(reference.abs().max())
        assert scale > 0, parameter_name
        assert float((parameter.grad - reference).abs().max()) <= 1e-5 * scale, parameter_name


@pytest.mark.parametrize("onednn", [True, False])
def test_linear_is_f_linear_to_float_rounding_by_either_library(onednn, monkeypatch):
    """The three products of a layer, as ``Gradient`` takes them: forward, weight gradient
    (transposed operands) and input gradient (a transposed weight); oneDNN where the CPU is
    AMD's, MKL elsewhere."""
    monkeypatch.setattr(closed_form, "_products_by_onednn", lambda: onednn)
    torch.manual_seed(0)
    x, weight, bias, d_out = torch.rand(100, 784), torch.randn(500, 784), torch.randn(500), torch.randn(100, 500)
    cases = {
        "forward": (linear(x, weight, bias), x @ weight.t() + bias),
        "weight gradient": (linear(d_out.t(), x.t()), d_out.t() @ x),
        "input gradient": (linear(d_out, weight.t()), d_out @ weight),
    }
    for case, (value, reference) in cases.items():
        assert value.shape == reference.shape, case
        assert float((value - reference).abs().max()) <= 1e-5 * float(reference.abs().max()), case


def test_the_closed_form_gradient_is_not_autograd_s_for_another_batch():
    """The comparison above can fail: the gradient of another batch is far from it."""
    config = CASES["VAE z=20"].replace(init_std=0.1)
    model = build_model(config, (1, 28, 28))
    x = _batch(config)
    torch.manual_seed(7)
    _, gradient = _autograd(model, config, x)
    torch.manual_seed(7)
    Gradient(model, config)(x.flip(0)[:50], None)
    weight = model.decoder[2].weight
    assert float((weight.grad - gradient["decoder.2.weight"]).abs().max()) > 1e-2 * float(weight.grad.abs().max())


@pytest.mark.parametrize(
    "change",
    [
        dict(model="mlp", widths=(32,)),
        dict(likelihood="gaussian"),
        dict(likelihood="mse"),
        dict(activation="relu"),
        dict(latent="mean"),
        dict(latent="point"),  # an AE with a KL term has no variance to take it of
        dict(loss_terms=(("recon", 1.0), ("kl", 1.0), ("centering", 1.0))),
        dict(loss_terms=(("kl", 1.0),)),
        dict(freeze=("encoder",)),
        dict(device="cuda"),
    ],
)
def test_every_other_config_keeps_autograd(change):
    config = VAE.replace(**change)
    assert not covers(config)
    model = build_model(config.replace(device="cpu"), (1, 28, 28))  # no CUDA here: the gate is what is tested
    assert not isinstance(gradient_function(model, config, None, None, None), Gradient)
    with pytest.raises(ValueError, match="no closed-form gradient"):
        Gradient(model, config)


@pytest.mark.parametrize("name", ["VAE z=20", "AE z=3 (tanh latent)"])
def test_k_s_models_train_with_the_closed_form_unless_told_otherwise(name):
    assert covers(CASES[name])
    model = build_model(CASES[name], (1, 28, 28))
    assert isinstance(gradient_function(model, CASES[name], None, None, None), Gradient)
    assert not isinstance(gradient_function(model, CASES[name], None, None, None, use_closed_form=False), Gradient)


@pytest.mark.parametrize("name", ["VAE z=20", "AE z=3 (tanh latent)"])
def test_training_with_the_closed_form_gives_autograd_s_losses_to_float_rounding(name):
    """Two epochs of 1,050 images: the recorded losses agree to 2 %. That is the scale of float
    rounding here: autograd itself, run on one thread instead of two, moves the VAE's test KL
    by 0.6 % (the closed form: 1.1 %; its training loss: 0.03 %). Adagrad's first step moves
    a weight by lr times the sign of its gradient, so a gradient that is zero but for rounding
    moves that weight by 2 lr; the weights are not compared one by one. The gradients
    themselves are compared above, at 1e-5."""
    config = CASES[name].replace(epochs=2, train_size=1050, test_size=300)
    closed = train(config, progress=False).history
    reference = train(config, progress=False, autograd_only=True).history
    for row, old in zip(closed, reference, strict=True):
        losses = {k: v for k, v in row.items() if k.startswith(("train_", "test_"))}
        assert len(losses) >= 4 and losses == pytest.approx({k: old[k] for k in losses}, rel=2e-2)
        assert row["train_loss"] == pytest.approx(old["train_loss"], rel=2e-3)
