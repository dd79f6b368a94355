"""The one training loop of the book, its per-epoch hooks, and the result cache.

``run(config)`` returns a trained model and its per-epoch history, from the cache when
the same config (and the same hook names) was trained before. Batches are taken by index
from in-memory tensors; every epoch records the training means of the config's loss terms
and the same terms on the test set, then whatever the hooks return.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from tqdm.std import tqdm

from .config import ExperimentConfig
from .data import experiment_split
from .errors import TrainingDivergedError
from .losses import loss_terms
from .models import build_model
from .storage import atomic_torch_save, cache_dir

OPTIMIZERS = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}

# A hook sees the model and the split after each epoch and returns metrics to record.
EpochHook = Callable[[torch.nn.Module, tuple], Mapping[str, float]]


@dataclass
class Run:
    """A trained model, its config and per-epoch history (one dict per epoch)."""

    config: ExperimentConfig
    model: torch.nn.Module
    history: list
    from_cache: bool
    image_shape: tuple

    def curve(self, key: str) -> list:
        return [row[key] for row in self.history]

    @property
    def final(self) -> dict:
        return self.history[-1]


def make_optimizer(config: ExperimentConfig, parameters):
    fused = {"fused": True} if config.device == "cpu" and config.optimizer != "sgd" else {}
    return OPTIMIZERS[config.optimizer](parameters, lr=config.lr, weight_decay=config.weight_decay, **fused)


@torch.no_grad()
def evaluate(model, x, y, config, chunk: int = 2000) -> dict:
    """Means over (x, y) of the config's loss terms, computed in chunks."""
    model.eval()
    sums, n = {}, 0
    for start in range(0, len(x), chunk):
        xb, yb = x[start:start + chunk], y[start:start + chunk]
        for name, value in loss_terms(xb, yb, model(xb), config).items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(xb)
        n += len(xb)
    model.train()
    return {name: total / n for name, total in sums.items()}


def train(config: ExperimentConfig, hooks: Mapping[str, EpochHook] | None = None,
          progress: bool = True) -> Run:
    """Train ``config`` from scratch (seeded); raise TrainingDivergedError on a NaN/inf loss."""
    torch.manual_seed(config.seed)
    split = experiment_split(config)
    x_train, y_train, x_test, y_test = split
    model = build_model(config, tuple(x_train.shape[1:])).to(config.device)
    if config.init_from is not None:
        start = run(config.init_from, progress=progress).model.state_dict()
        model.load_state_dict({k: v for k, v in start.items() if k.split(".")[0] not in config.reinit},
                              strict=False)
    for name in config.freeze:
        getattr(model, name).requires_grad_(False)
    optimizer = make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    order = torch.Generator().manual_seed(config.seed)
    n, batch = len(x_train), config.batch_size
    history = []
    bar = tqdm(range(1, config.epochs + 1), desc=config.label(), disable=not progress,
               file=sys.stdout, ncols=100, mininterval=5.0, ascii=True)
    for epoch in bar:
        started = time.perf_counter()
        sums = {}
        permutation = torch.randperm(n, generator=order).to(config.device)
        for start in range(0, n, batch):
            index = permutation[start:start + batch]
            xb, yb = x_train[index], y_train[index]
            if config.pool_size:
                pool = x_train[torch.randint(n, (config.pool_size,), generator=order).to(config.device)]
                out = model(xb, pool)
            else:
                out = model(xb)
            terms = loss_terms(xb, yb, out, config)
            if not torch.isfinite(terms["loss"]):
                raise TrainingDivergedError(f"{config.label()}: loss became {float(terms['loss'].detach())} "
                                            f"in epoch {epoch}; nothing was cached")
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.detach() * len(index)
        row = {"epoch": epoch, "samples": epoch * n, "seconds": time.perf_counter() - started}
        row.update({f"train_{name}": float(total) / n for name, total in sums.items()})
        if len(x_test):
            row.update({f"test_{k}": v for k, v in evaluate(model, x_test, y_test, config).items()})
        with torch.no_grad():
            model.eval()
            for hook in (hooks or {}).values():
                row.update(hook(model, split))
            model.train()
        history.append(row)
        bar.set_postfix_str(f"train {row['train_loss']:.2f}" +
                            (f" test {row['test_loss']:.2f}" if "test_loss" in row else ""), refresh=False)
    bar.close()
    model.eval()
    return Run(config, model, history, from_cache=False, image_shape=tuple(x_train.shape[1:]))


def _cache_path(config: ExperimentConfig, hooks) -> Path:
    key = config.key() if not hooks else f"{config.key()}-{'-'.join(sorted(hooks))}"
    return cache_dir() / "runs" / f"{key}.pt"


def run(config: ExperimentConfig, hooks: Mapping[str, EpochHook] | None = None,
        progress: bool = True) -> Run:
    """``train`` through the cache: a config trained before is loaded, never retrained.

    The entry is written atomically after the last epoch, so an interrupted or
    diverged run leaves no entry. Hook names are part of the key, their code is not.
    """
    path = _cache_path(config, hooks)
    if path.is_file():
        entry = torch.load(path, map_location=config.device)
        model = build_model(config, entry["image_shape"]).to(config.device)
        model.load_state_dict(entry["state_dict"])
        model.eval()
        if progress:
            print(f"{config.label()}: loaded from cache ({path.stem})")
        return Run(config, model, entry["history"], from_cache=True, image_shape=entry["image_shape"])
    result = train(config, hooks, progress)
    entry = {"config": config.to_dict(), "history": result.history, "image_shape": result.image_shape,
             "state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()}}
    atomic_torch_save(entry, path)
    return result


def select_step_size(config: ExperimentConfig, candidates, epochs: int, train_size: int | None,
                     progress: bool = True):
    """K's step-size search: train ``epochs`` epochs with each candidate and keep the one
    with the lowest final training loss. Returns (best, {candidate: final loss or inf})."""
    finals = {}
    for lr in candidates:
        trial = config.replace(lr=lr, epochs=epochs, train_size=train_size, test_size=0)
        try:
            finals[lr] = run(trial, progress=progress).final["train_loss"]
        except TrainingDivergedError:
            finals[lr] = math.inf
    return min(finals, key=finals.get), finals
