"""Experiment configs as plain, hashable data (CONTRIBUTING.md: "Configs are data")."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass

from .data import DATASETS
from .errors import ParameterError
from .losses import LIKELIHOODS, LOSS_TERMS
from .models import ACTIVATIONS, ARCHITECTURES, LATENTS
from .optimizers import OPTIMIZERS


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines a trained model; its hash keys the result cache.

    ``model`` names an architecture family of ``models.ARCHITECTURES``; ``latent`` says what
    the decoder receives: ``sampled`` (z = mu + sigma * eps, a VAE), ``mean`` (mu; the
    encoder still emits log sigma^2, as P's "AE with KL") or ``point`` (a plain AE).
    ``widths`` are the hidden widths (mlp) or channels (conv). ``loss_terms`` pairs a term
    of ``losses.LOSS_TERMS`` with its weight. ``weight_decay`` is AEVB's N(0, I) weight prior
    per datapoint (1 / number of training images). ``init_std`` is the standard deviation of a
    N(0, init_std²) initialisation of every weight and bias (AEVB's 0.01, K's 0.1); ``None``
    keeps PyTorch's default. ``output_bias_at_mean`` starts an MLP decoder's output bias at the
    logit of the training mean image (the constant model), and ``adagrad_accumulator`` is
    Adagrad's accumulator at the start (PyTorch's 0; Duchi et al.'s δ, TensorFlow's 0.1): with 0
    each weight's first step is ± the step size whatever its gradient. ``init_from`` starts from
    another config's trained weights, except the modules in ``reinit``; modules in ``freeze`` are
    not trained (P §2.3's decoder ablation). ``codebook_size`` is the number of codes (or of
    R §3.1's cluster centres, ``latent="centres"``); ``pool_size`` is R §3.1's matching pool M,
    drawn afresh from the training set for every batch (0: the batch itself is the pool).
    """

    model: str
    dataset: str = "mnist"
    latent: str = "sampled"
    latent_dim: int = 20
    hidden_dim: int = 500
    widths: tuple = ()
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    decoder_std: float = 0.1
    binarize: bool = False
    loss_terms: tuple = (("recon", 1.0), ("kl", 1.0))
    optimizer: str = "adagrad"
    lr: float = 0.02
    weight_decay: float = 0.0
    init_std: float | None = 0.01
    output_bias_at_mean: bool = False
    adagrad_accumulator: float = 0.0
    batch_size: int = 100
    epochs: int = 10
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    codebook_size: int = 0
    codebook_decay: float | None = None
    map_shape: tuple = ()
    pool_size: int = 0
    init_from: ExperimentConfig | None = None
    reinit: tuple = ()
    freeze: tuple = ()

    def __post_init__(self):
        """Check every name-valued field against its table: a typo fails here, not as another model."""
        tables = {
            "model": ARCHITECTURES,
            "dataset": DATASETS,
            "latent": LATENTS,
            "activation": ACTIVATIONS,
            "likelihood": LIKELIHOODS,
            "optimizer": OPTIMIZERS,
        }
        checks = [(field, getattr(self, field), table) for field, table in tables.items()]
        checks += [("loss_terms", term, LOSS_TERMS) for term, _ in self.loss_terms]
        for field, value, table in checks:
            if value not in table:
                close = difflib.get_close_matches(str(value), list(table), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParameterError(f"{field}: {value!r} is not one of {', '.join(table)}{hint}")
        if self.init_from is not None and not isinstance(self.init_from, ExperimentConfig):
            raise ParameterError(f"init_from: expected an ExperimentConfig, got {type(self.init_from).__name__}")

    def replace(self, **changes) -> ExperimentConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A stable 16-hex-digit hash of every field that differs from its default, so that
        adding a field with a default keeps the keys (and cached runs) of existing configs."""
        return _digest(self._non_defaults())

    def lineage_key(self) -> str:
        """The key of this run at any length: every field but ``epochs`` (a run of 10 epochs is
        the first 10 epochs of a run of 20; the cache keeps both under this key)."""
        return _digest({k: v for k, v in self._non_defaults().items() if k != "epochs"})

    def _non_defaults(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = value._non_defaults() if isinstance(value, ExperimentConfig) else value
        return out

    def label(self) -> str:
        """A short name: family/latent, dataset, loss terms (with any weight other than 1), z, step size, seed."""
        terms = "+".join(name if weight == 1 else f"{name}×{weight:g}" for name, weight in self.loss_terms)
        return f"{self.model}/{self.latent} {self.dataset} {terms} z={self.latent_dim} lr={self.lr:g} seed={self.seed}"


def _digest(values: dict) -> str:
    text = json.dumps(values, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
