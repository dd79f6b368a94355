"""Experiment configs as plain, hashable data (DESIGN.md: "Configs are data")."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines a trained model; its hash keys the result cache.

    ``loss_terms`` pairs a term name of ``losses.LOSS_TERMS`` with its weight.
    ``weight_decay`` is the N(0, I) prior on the weights of AEVB §5, per datapoint
    (1 / number of training images). ``init_std`` is AEVB's N(0, 0.01) initialisation;
    ``None`` keeps PyTorch's default.
    """

    model: str
    dataset: str = "mnist"
    latent_dim: int = 20
    hidden_dim: int = 500
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    decoder_std: float = 0.1
    binarize: bool = False
    loss_terms: tuple = (("recon", 1.0), ("kl", 1.0))
    optimizer: str = "adagrad"
    lr: float = 0.02
    weight_decay: float = 0.0
    init_std: float | None = 0.01
    batch_size: int = 100
    epochs: int = 10
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    device: str = "cpu"

    def replace(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A stable 16-hex-digit hash of every field."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        return f"{self.model} z={self.latent_dim} lr={self.lr:g} seed={self.seed}"
