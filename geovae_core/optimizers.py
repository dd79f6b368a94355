"""The optimisers a config may name (``ExperimentConfig.optimizer``), and how one is made."""

from __future__ import annotations

import torch

OPTIMIZERS = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def make_optimizer(config, parameters) -> torch.optim.Optimizer:
    """The config's optimiser over ``parameters``: its step size and weight decay (AEVB's N(0, I)
    weight prior), Adagrad's starting accumulator, fused into one kernel on the CPU where torch has
    one (Adagrad, Adam)."""
    options = {"fused": True} if config.device == "cpu" and config.optimizer != "sgd" else {}
    if config.optimizer == "adagrad":
        options["initial_accumulator_value"] = config.adagrad_accumulator
    return OPTIMIZERS[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay, **options)
