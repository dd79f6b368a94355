"""The training loop trains the same models to the same numbers as a plain loop written here.

``_reference_train`` is the loop as it was before it was sped up (training.py at commit 7950b1a,
without its progress bar and hooks), run on a network and loss terms of its own: the network is
built here from ``torch.nn`` layers for each family (the architectures of K's Appendix A and P's
appendices; the codebooks are ``geovae_core.codebook``'s, tested in test_codebook.py), its
weights copied from the geovae model the same seed builds; the loss terms are the documents'
formulas written out here, each checked against torch's own implementation
(``test_the_reference_terms_are_torch_s_own``). Nothing of ``geovae_core.losses`` or of the
model's forward pass is called, so a bug in either cannot be shared by both sides. The same seed
must give the same history to the last bit, and the same final weights (up to subnormal values
flushed to 0), for every model family and latent the book trains.
One change since is carried into it on purpose: the test set is scored with its own seeded
noise, outside the run's random stream (``training.evaluate``), and only at the kept epochs
(every epoch of these 2-epoch runs).
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import geovae_core.losses as losses
from geovae_core import ExperimentConfig, train
from geovae_core.codebook import ClusterCentres, Codebook, as_vectors
from geovae_core.data import experiment_split
from geovae_core.models import build_model

SHALLOW = ExperimentConfig(
    model="shallow_mlp", latent_dim=20, lr=0.02, weight_decay=1 / 60000, epochs=2, train_size=1050, test_size=300
)
_CONV = dict(
    activation="relu",
    likelihood="mse",
    optimizer="adam",
    lr=1e-3,
    init_std=None,
    epochs=2,
    train_size=300,
    test_size=100,
)
CONFIGS = {
    "shallow_mlp VAE (Adagrad, weight decay, bernoulli)": SHALLOW,
    "shallow_mlp AE": SHALLOW.replace(latent="point", loss_terms=(("recon", 1.0),), train_size=500),
    "mlp EMA codebook": ExperimentConfig(
        model="mlp",
        latent="codebook",
        latent_dim=8,
        widths=(64,),
        activation="relu",
        likelihood="mse",
        loss_terms=(("recon", 1.0), ("pull", 0.5)),
        codebook_size=10,
        codebook_decay=0.9,
        optimizer="adam",
        lr=1e-3,
        init_std=None,
        epochs=2,
        train_size=1000,
        test_size=200,
        batch_size=64,
    ),
    "conv_map EMA codebook": ExperimentConfig(
        model="conv_map",
        dataset="fashion_mnist",
        latent="codebook",
        latent_dim=8,
        map_shape=(7, 7),
        widths=(8, 16),
        loss_terms=(("recon", 1.0), ("pull", 1.0)),
        codebook_size=16,
        codebook_decay=0.99,
        batch_size=32,
        **_CONV,
    ),
    "conv quantized": ExperimentConfig(
        model="conv",
        latent="quantized",
        latent_dim=4,
        widths=(8, 16),
        codebook_size=8,
        loss_terms=(("recon", 1.0), ("pull", 1.0)),
        batch_size=50,
        **_CONV,
    ),
    "conv VAE (bernoulli)": ExperimentConfig(
        model="conv",
        latent="sampled",
        latent_dim=4,
        widths=(8, 16),
        batch_size=64,
        **{**_CONV, "likelihood": "bernoulli"},
    ),
    "conv centres with a pool": ExperimentConfig(
        model="conv",
        latent="centres",
        latent_dim=4,
        widths=(8, 16),
        codebook_size=2,
        pool_size=40,
        batch_size=32,
        loss_terms=(("recon", 1.0), ("centre_pull", 1.0), ("centre_recon", 0.5)),
        **_CONV,
    ),
    "classifier (xent)": ExperimentConfig(
        model="classifier_ae",
        latent="point",
        latent_dim=8,
        widths=(16, 16),
        activation="relu",
        likelihood="mse",
        init_std=None,
        optimizer="adam",
        lr=1e-2,
        loss_terms=(("xent", 1.0),),
        epochs=2,
        train_size=600,
        test_size=100,
    ),
    "mlp gaussian, spread terms, SGD": ExperimentConfig(
        model="mlp",
        latent="mean",
        latent_dim=4,
        widths=(32,),
        likelihood="gaussian",
        optimizer="sgd",
        lr=1e-3,
        loss_terms=(("recon", 1.0), ("centering", 1.0), ("spread_sym", 0.5), ("spread_asym", 0.25)),
        epochs=2,
        train_size=500,
        test_size=100,
        init_std=None,
    ),
    "resmlp binarized, weight decay": ExperimentConfig(
        model="resmlp",
        binarize=True,
        latent_dim=4,
        widths=(32, 32),
        activation="relu",
        optimizer="adam",
        lr=1e-3,
        epochs=2,
        train_size=500,
        test_size=0,
        init_std=None,
        weight_decay=1e-3,
    ),
    "mlp with a frozen encoder": ExperimentConfig(
        model="mlp",
        latent="point",
        latent_dim=4,
        widths=(32,),
        activation="relu",
        likelihood="mse",
        loss_terms=(("recon", 1.0),),
        optimizer="adam",
        lr=1e-3,
        init_std=None,
        freeze=("encoder",),
        epochs=2,
        train_size=500,
        test_size=100,
    ),
}


# --- the reference's loss terms: the documents' formulas, written out -----------------------------


def _kl(mu, logvar):
    """KL(N(mu, sigma^2) || N(0, I)) per sample (AEVB Appendix B)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def _bernoulli_nll(logits, x):
    """-log Bernoulli(x; sigmoid(l)) summed over pixels, in the stable form max(l, 0) - x l + log(1 + e^-|l|)."""
    per_pixel = torch.relu(logits) - x * logits + torch.log(1 + torch.exp(-logits.abs()))
    return per_pixel.sum(dim=1)


def _gaussian_nll(logits, x, std):
    """-log N(x; sigmoid(l), std^2 I) summed over pixels."""
    squared = (x - torch.sigmoid(logits)).pow(2).sum(dim=1)
    return 0.5 * squared / std**2 + x.shape[1] * (math.log(std) + 0.5 * math.log(2 * math.pi))


def _squared_error(logits, x):
    return (x - torch.sigmoid(logits)).pow(2).sum(dim=1)


_RECONSTRUCTIONS = {
    "bernoulli": lambda logits, x, config: _bernoulli_nll(logits, x),
    "gaussian": lambda logits, x, config: _gaussian_nll(logits, x, config.decoder_std),
    "mse": lambda logits, x, config: _squared_error(logits, x),
}


def _reconstruction(logits, x, config):
    return _RECONSTRUCTIONS[config.likelihood](logits, x.flatten(1), config)


_TERMS = {
    "recon": lambda x, y, out, config: _reconstruction(out["logits"], x, config),
    "kl": lambda x, y, out, config: _kl(out["mu"], out["logvar"]),
    "centering": lambda x, y, out, config: out["mu"].pow(2).sum(dim=1),  # P §2.2: ||mu||^2
    "spread_asym": lambda x, y, out, config: torch.relu(-out["logvar"]).sum(dim=1),  # sum ReLU(-log Var)
    "spread_sym": lambda x, y, out, config: torch.log1p(out["logvar"].pow(2)).sum(dim=1),  # sum log(1 + log^2 Var)
    "pull": lambda x, y, out, config: out["pull"],
    "centre_pull": lambda x, y, out, config: out["centre_pull"],
    "centre_recon": lambda x, y, out, config: _reconstruction(out["centre_logits"], out["matched"], config),
    "xent": lambda x, y, out, config: F.cross_entropy(out["class_logits"], y, reduction="none"),
}


def _reference_terms(x, y, out, config) -> dict:
    terms = {name: _TERMS[name](x, y, out, config).mean() for name, _ in config.loss_terms}
    terms["loss"] = sum(weight * terms[name] for name, weight in config.loss_terms)
    return terms


# --- the reference's network: each family from torch.nn layers -----------------------------------

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _dense(sizes, act, final=None) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``act`` between them (and ``final`` after the last)."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), act()]
    layers = layers[:-1] + ([final()] if final else [])
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, width, act):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(width, width), act(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.block(x)


def _residual(n_in, width, blocks, n_out, act) -> nn.Sequential:
    layers = [nn.Linear(n_in, width), act()]
    for _ in range(blocks):
        layers += [_Residual(width, act), act()]
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def _down(channels_in, widths, act) -> list:
    """Stride-2 4x4 convolutions, each halving the side."""
    layers = []
    for width in widths:
        layers += [nn.Conv2d(channels_in, width, 4, stride=2, padding=1), act()]
        channels_in = width
    return layers


def _up(widths, channels_out, act) -> list:
    """Stride-2 4x4 transposed convolutions back to ``channels_out`` pixel logits, flattened."""
    widths = list(reversed(widths))
    layers = []
    for width_in, width_out in zip(widths, widths[1:]):
        layers += [nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1), act()]
    return [*layers, nn.ConvTranspose2d(widths[-1], channels_out, 4, stride=2, padding=1), nn.Flatten()]


def _parts(config, shape) -> tuple:
    """(encoder, decoder, codebook, head) of ``config``'s family for images of ``shape``."""
    c, h, w = shape
    pixels, z, widths, act = c * h * w, config.latent_dim, config.widths, _ACTIVATIONS[config.activation]
    out = 2 * z if config.latent in ("sampled", "mean") else z  # [mu, log sigma^2] or mu
    side_h, side_w = h >> len(widths), w >> len(widths)
    head = None
    if config.model == "shallow_mlp":  # K, Appendix A: 784-500(tanh)-out, the AE's code through tanh too
        final = nn.Tanh if config.latent == "point" else None
        encoder = nn.Sequential(nn.Flatten(), _dense([pixels, config.hidden_dim, out], act, final))
        decoder = _dense([z, config.hidden_dim, pixels], act)
    elif config.model in ("mlp", "classifier_ae"):
        encoder = nn.Sequential(nn.Flatten(), _dense([pixels, *widths, out], act))
        decoder = _dense([z, *reversed(widths), pixels], act)
        if config.model == "classifier_ae":
            head = nn.Sequential(act(), nn.Linear(z, 10))
    elif config.model == "resmlp":
        encoder = nn.Sequential(nn.Flatten(), _residual(pixels, widths[0], len(widths), out, act))
        decoder = _residual(z, widths[0], len(widths), pixels, act)
    elif config.model == "conv":
        encoder = nn.Sequential(*_down(c, widths, act), nn.Flatten(), nn.Linear(widths[-1] * side_h * side_w, out))
        decoder = nn.Sequential(
            nn.Linear(z, widths[-1] * side_h * side_w),
            act(),
            nn.Unflatten(1, (widths[-1], side_h, side_w)),
            *_up(widths, c, act),
        )
    elif config.model == "conv_map":  # a map of codes [B, z, h, w]
        encoder = nn.Sequential(
            *_down(c, widths, act), nn.Conv2d(widths[-1], z, 1), nn.AdaptiveAvgPool2d(tuple(config.map_shape))
        )
        decoder = nn.Sequential(
            nn.Conv2d(z, widths[-1], 1), act(), nn.Upsample(size=(side_h, side_w)), *_up(widths, c, act)
        )
    else:
        raise AssertionError(f"no reference network for {config.model}")
    codebook = None
    if config.latent in ("codebook", "quantized"):
        codebook = Codebook(config.codebook_size, z, config.codebook_decay)
    elif config.latent == "centres":
        codebook = ClusterCentres(config.codebook_size, z)
    return encoder, decoder, codebook, head


class _Network(nn.Module):
    """x -> encoder -> mu (and log sigma^2) -> z -> decoder -> pixel logits, as each latent asks."""

    def __init__(self, config, shape):
        super().__init__()
        self.latent = config.latent
        self.encoder, self.decoder, self.codebook, self.head = _parts(config, shape)

    def encode(self, x):
        h = self.encoder(x)
        return h.chunk(2, dim=1) if self.latent in ("sampled", "mean") else (h, None)

    def forward(self, x, pool=None):
        mu, logvar = self.encode(x if pool is None else torch.cat([x, pool]))
        pool_codes = mu
        if pool is not None:
            mu, pool_codes = mu[: len(x)], mu[len(x) :]
        out = {"mu": mu, "logvar": logvar}
        if self.latent == "centres":  # R §3.1: each centre pulled with its nearest encoding of the pool
            out.update(self.codebook(pool_codes))
            out["matched"] = (x if pool is None else pool)[out["centre_indices"]]
            out["centre_logits"] = self.decoder(self.codebook.codes)
        elif self.codebook is not None:
            out.update(self.codebook(mu))
        if self.head is not None:
            out["class_logits"] = self.head(mu)
        if self.latent == "sampled":  # AEVB eq. 10: z = mu + sigma * eps, sigma = exp(log sigma^2 / 2)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        elif self.latent == "quantized":  # VQ-VAE: the nearest code, straight-through gradient
            z = mu + (out["quantized"] - mu).detach()
        else:
            z = mu
        return {**out, "z": z, "logits": self.decoder(z)}

    @torch.no_grad()
    def start_codebook(self, images, generator, chunk=1024):
        """P App. A.4: the codes start at K distinct encodings of randomly ordered images."""
        if not isinstance(self.codebook, Codebook):
            return
        order = torch.randperm(len(images), generator=generator)
        vectors = []
        for start in range(0, len(images), chunk):
            vectors.append(as_vectors(self.encode(images[order[start : start + chunk]])[0]))
            if len(torch.unique(torch.cat(vectors), dim=0)) >= self.codebook.size:
                break
        self.codebook.initialise(torch.cat(vectors), generator)


def _reference_network(config, shape) -> _Network:
    """The reference network with the initial weights of the geovae model the same seed builds
    (drawing what building it draws from the run's random stream, as the loop does)."""
    with torch.random.fork_rng(devices=[]):  # our own layers' default initialisation draws outside the run
        network = _Network(config, shape)
    network.load_state_dict(copy.deepcopy(build_model(config, shape).state_dict()))  # strict: same layers
    return network.to(config.device)


# --- the loop as it was (commit 7950b1a) ---------------------------------------------------------

_OPTIMIZERS = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def _old_make_optimizer(config, parameters):
    fused = {"fused": True} if config.device == "cpu" and config.optimizer != "sgd" else {}
    return _OPTIMIZERS[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay, **fused)


@torch.no_grad()
def _old_evaluate(model, x, y, config, chunk: int = 2000) -> dict:
    model.eval()
    sums, n = {}, 0
    for start in range(0, len(x), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        for name, value in _reference_terms(xb, yb, model(xb), config).items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(xb)
        n += len(xb)
    model.train()
    return {name: total / n for name, total in sums.items()}


def _reference_train(config):
    """training.train of commit 7950b1a without its progress bar and hooks (none of these
    configs warm-starts), on the reference network and terms: returns (history, model)."""
    torch.manual_seed(config.seed)
    x_train, y_train, x_test, y_test = experiment_split(config)
    model = _reference_network(config, tuple(x_train.shape[1:]))
    for name in config.freeze:
        getattr(model, name).requires_grad_(False)
    order = torch.Generator().manual_seed(config.seed)
    model.start_codebook(x_train, order)
    optimizer = _old_make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    n, batch = len(x_train), config.batch_size
    history = []
    for epoch in range(1, config.epochs + 1):
        sums = {}
        permutation = torch.randperm(n, generator=order).to(config.device)
        for start in range(0, n, batch):
            index = permutation[start : start + batch]
            xb, yb = x_train[index], y_train[index]
            if config.pool_size:
                pool = x_train[torch.randint(n, (config.pool_size,), generator=order).to(config.device)]
                out = model(xb, pool)
            else:
                out = model(xb)
            terms = _reference_terms(xb, yb, out, config)
            assert torch.isfinite(terms["loss"])
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.detach() * len(index)
        row = {"epoch": epoch, "samples": epoch * n}
        row.update({f"train_{name}": float(total) / n for name, total in sums.items()})
        if len(x_test):
            with torch.random.fork_rng(devices=[]):  # the one change carried in (module docstring)
                torch.manual_seed(config.seed)
                row.update({f"test_{k}": v for k, v in _old_evaluate(model, x_test, y_test, config).items()})
        history.append(row)
    model.eval()
    return history, model


# --- the comparisons ----------------------------------------------------------------------------


def _assert_same_numbers(history, model, reference_history, reference_model):
    """The same history to the last bit, and the same weights up to 1e-30: the loop may flush
    to 0 a weight that the old one left at a subnormal value (``training`` flushes them).

    Nothing looser would mean anything: Adagrad's and Adam's first steps move every weight by
    lr times the sign of its gradient, so a difference in the last bit of a gradient that is
    zero but for rounding moves a weight by 2 lr. The old loop itself, run with 1 and with 2
    threads, gives K's VAE test losses 0.6 % apart after two short epochs."""
    assert len(history) == len(reference_history)
    for row, old in zip(history, reference_history, strict=True):
        # training to the last bit; the test set is now evaluated in other chunks: float rounding
        assert {k: v for k, v in row.items() if k != "seconds" and not k.startswith("test_")} == {
            k: v for k, v in old.items() if not k.startswith("test_")
        }
        assert {k: v for k, v in row.items() if k.startswith("test_")} == pytest.approx(
            {k: v for k, v in old.items() if k.startswith("test_")}, rel=1e-5
        )
    state, old_state = model.state_dict(), reference_model.state_dict()
    assert list(state) == list(old_state)
    for name, value in old_state.items():
        if value.is_floating_point():
            assert float((state[name] - value).abs().max()) <= 1e-30, name
        else:
            assert torch.equal(state[name], value), name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_loop_gives_the_numbers_of_the_loop_before_it_was_sped_up(name):
    config = CONFIGS[name]
    reference_history, reference_model = _reference_train(config)
    result = train(config, progress=False)
    _assert_same_numbers(result.history, result.model, reference_history, reference_model)


def test_the_loop_gives_the_same_numbers_with_two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        config = CONFIGS["shallow_mlp VAE (Adagrad, weight decay, bernoulli)"].replace(
            epochs=1, train_size=300, test_size=100
        )
        reference_history, reference_model = _reference_train(config)
        result = train(config, progress=False)
    finally:
        torch.set_num_threads(threads)
    _assert_same_numbers(result.history, result.model, reference_history, reference_model)


def _outputs(generator) -> tuple:
    out = {
        "logits": torch.randn(8, 784, generator=generator) * 3,
        "mu": torch.randn(8, 3, generator=generator),
        "logvar": torch.randn(8, 3, generator=generator) * 2,
    }
    return out, torch.rand(8, 1, 28, 28, generator=generator)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "mse"])
def test_the_loss_is_the_weighted_sum_of_the_reference_terms(likelihood):
    out, x = _outputs(torch.Generator().manual_seed(0))
    terms = (("centering", 1), ("spread_sym", 0.5), ("spread_asym", 0.25))
    for weights in [(1.0, 1.0), (1.0, 0.5), (2, 1), (0.25, 3.0)]:
        config = SHALLOW.replace(
            likelihood=likelihood, decoder_std=0.3, loss_terms=(("recon", weights[0]), ("kl", weights[1]), *terms)
        )
        new, reference = losses.loss_terms(x, None, out, config), _reference_terms(x, None, out, config)
        assert list(new) == list(reference)
        for name in reference:
            assert torch.equal(new[name], reference[name]), (weights, name)


def test_the_reference_terms_are_torch_s_own():
    """The reference's formulas against torch's implementations of the same quantities."""
    out, x = _outputs(torch.Generator().manual_seed(1))
    logits, mu, logvar, x = out["logits"], out["mu"], out["logvar"], x.flatten(1)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    assert torch.allclose(_bernoulli_nll(logits, x), bce, rtol=1e-5)
    normal, standard = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)
    assert torch.allclose(_kl(mu, logvar), torch.distributions.kl_divergence(normal, standard).sum(dim=1), rtol=1e-5)
    gaussian = -torch.distributions.Normal(torch.sigmoid(logits), 0.3).log_prob(x).sum(dim=1)
    assert torch.allclose(_gaussian_nll(logits, x, 0.3), gaussian, rtol=1e-5)
    mse = F.mse_loss(torch.sigmoid(logits), x, reduction="none").sum(dim=1)
    assert torch.allclose(_squared_error(logits, x), mse, rtol=1e-5)
    known = {"mu": torch.tensor([[1.0, -2.0]]), "logvar": torch.tensor([[-2.0, 3.0]])}
    assert _TERMS["centering"](None, None, known, None).item() == 5.0  # 1 + 4
    assert _TERMS["spread_asym"](None, None, known, None).item() == 2.0  # only Var < 1: -(-2)
    assert _TERMS["spread_sym"](None, None, known, None).item() == pytest.approx(math.log(5) + math.log(10))


@pytest.mark.slow
def test_importing_geovae_flushes_subnormals_in_every_thread():
    """In a fresh process, importing geovae_core sets the flush before torch starts its
    threads, which inherit it: 1e-30 * 1e-9 is 0 in every thread's share of a large product.
    Only where the CPU can flush: torch.set_flush_denormal supports x86 with SSE3 and AArch64,
    and answers False elsewhere (there training keeps its subnormals, more slowly)."""
    if not torch.set_flush_denormal(True):  # geovae_core set it at import: asking again changes nothing
        pytest.skip("this CPU cannot flush subnormals to zero (torch.set_flush_denormal: x86 with SSE3, AArch64)")
    code = (
        "import torch, geovae_core; torch.set_num_threads(2); "
        "print(int((torch.full((1 << 20,), 1e-30) * 1e-9 != 0).sum()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"
