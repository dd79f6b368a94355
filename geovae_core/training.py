"""The one training loop of the book and its per-epoch hooks (``cache.run`` caches its runs).

Batches are taken by index from in-memory tensors and every gradient comes from autograd;
every epoch records the training means of the config's loss terms and whatever the hooks return,
and each epoch whose state a run keeps (``checkpoint_epochs``: 1, 2, 5, 10, 20 of 20) also the
same terms on the test set. ``benchmarks/bench_training.py`` measures the loop.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm as tqdm_auto
from tqdm.std import tqdm as tqdm_std

from .config import ExperimentConfig
from .data import experiment_split
from .errors import TrainingDivergedError
from .losses import loss_terms, reconstruction_nll
from .models import build_model
from .optimizers import make_optimizer

# Subnormal floats (|x| < 1.2e-38) are flushed to zero in this process. AEVB's weight decay
# drives the weights of MNIST's always-blank pixels through them, and on some CPUs every
# operation on one costs a microcode assist; only values below 1.2e-38 change. Set at import,
# before torch starts its OpenMP threads, which inherit the mode (POSIX threads inherit the
# floating-point environment); ``make bench`` measures what it saves on this CPU.
torch.set_flush_denormal(True)

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
        """``key``'s values over the epochs that recorded it (test scores: the kept epochs only)."""
        return [row[key] for row in self.history if key in row]

    def points(self, key: str, x: str = "epoch") -> tuple:
        """(``x``, ``key``) over the epochs that recorded ``key``, ready for ``plot``."""
        return [row[x] for row in self.history if key in row], self.curve(key)

    @property
    def final(self) -> dict:
        return self.history[-1]


@torch.no_grad()
def initial_model(config: ExperimentConfig) -> torch.nn.Module:
    """The run's model as ``train`` starts it, before any step: built with the config's seed (the
    controls' model left at its initialisation). The global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        x_train = experiment_split(config)[0]
        return build_model(config, tuple(x_train.shape[1:]), x_train.mean(0)).to(config.device).eval()


def start_training(model, config: ExperimentConfig, x_train: torch.Tensor):
    """What ``train`` and the dry run do before the first step: freeze ``config.freeze``, seed
    the batch order, start a codebook at distinct training encodings (P App. A.4) and make the
    optimiser. Returns (order, optimizer)."""
    for name in config.freeze:
        getattr(model, name).requires_grad_(False)
    order = torch.Generator().manual_seed(config.seed)
    if hasattr(model, "initialise_codebook"):
        model.initialise_codebook(x_train, order)
    return order, make_optimizer(config, [p for p in model.parameters() if p.requires_grad])


def batch_terms(model, config: ExperimentConfig, x_train, xb, yb, order) -> dict:
    """The config's loss terms on one batch; a model with a pool (R's cluster centres) is also
    given ``pool_size`` training images drawn with ``order``."""
    if config.pool_size:
        drawn = torch.randint(len(x_train), (config.pool_size,), generator=order).to(config.device)
        return loss_terms(xb, yb, model(xb, x_train.index_select(0, drawn)), config)
    return loss_terms(xb, yb, model(xb), config)


@torch.no_grad()
def evaluate(model, x, y, config, chunk: int = 128) -> dict:
    """Means over (x, y) of the config's loss terms, computed in chunks of ``chunk`` images:
    convolutions on the CPU run slower per image on much larger batches. Its noise (a sampled
    latent's) is drawn from torch's generator seeded with ``config.seed`` and then put back as it
    was: a score never moves the run's own random stream, so when a run scores cannot change its steps."""
    device = torch.device(config.device)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model.eval()
        sums, n = {}, 0
        for start in range(0, len(x), chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            for name, value in loss_terms(xb, yb, model(xb), config).items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(xb)
            n += len(xb)
        model.train()
    return {name: total / n for name, total in sums.items()}


@functools.cache
def constant_model_losses(config: ExperimentConfig) -> dict:
    """{history key: (the constant model's loss, a perfect model's)} on the split a run scores:
    for ``recon``, the training mean image as every output, and each image itself (the floor of
    BCE on grey levels: the summed pixel entropies); for ``xent``, the training class frequencies,
    and 0. What ``verdicts.training_check`` measures a run's final loss against."""
    x_train, y_train, x_test, y_test = experiment_split(config)
    x, y, split = (x_test, y_test, "test") if len(x_test) else (x_train, y_train, "train")
    terms = dict(config.loss_terms)
    out = {}
    if "recon" in terms:
        logit = lambda p: torch.logit(p.flatten(1).clamp(1e-4, 1 - 1e-4))  # noqa: E731
        mean = logit(x_train.mean(0, keepdim=True)).expand(len(x), -1)
        constant = float(reconstruction_nll(mean, x, config).mean())
        out[f"{split}_recon"] = (constant, float(reconstruction_nll(logit(x), x, config).mean()))
    if "xent" in terms:
        frequencies = torch.bincount(y_train, minlength=int(y_train.max()) + 1).float() / len(y_train)
        out[f"{split}_xent"] = (float(-frequencies.clamp_min(1e-12).log()[y].mean()), 0.0)
    return out


def checkpoint_epochs(epochs: int) -> list:
    """The epochs after which a run of ``epochs`` keeps its state: ``epochs``, half of it, a
    quarter, ... down to 1 (log-spaced; a run's last half and last doubling start at two of them)."""
    return sorted({epochs >> k for k in range(max(epochs, 1).bit_length())} - {0})


def train(
    config: ExperimentConfig,
    hooks: Mapping[str, EpochHook] | None = None,
    progress: bool = True,
    start_weights: Mapping[str, torch.Tensor] | None = None,
    resume: Mapping | None = None,
    keep: Callable[[int, dict], None] | None = None,
) -> Run:
    """Train ``config`` (seeded); raise TrainingDivergedError on a NaN/inf loss, and at every
    kept state and the end on a NaN/inf weight or recorded metric. A config with ``init_from``
    starts from ``start_weights``, that config's trained weights (``cache.run`` loads them).

    ``resume`` is the state of the same run after fewer epochs (as ``keep`` got it): training
    goes on from it as if it had never stopped, to the same numbers. ``keep(epoch, state)`` is
    called after each epoch of ``checkpoint_epochs(config.epochs)`` past the resumed one, with
    the run's whole state: weights, optimiser state, random states and history."""
    torch.manual_seed(config.seed)
    split = experiment_split(config)
    x_train, y_train, x_test, y_test = split
    image_shape = tuple(x_train.shape[1:])
    model = build_model(config, image_shape, x_train.mean(0)).to(config.device)
    if resume is not None:
        model.load_state_dict(resume["model"])
    elif config.init_from is not None:
        if start_weights is None:
            raise ValueError(f"{config.label()}: starts from another run's weights; train it through cache.run")
        model.load_state_dict(warm_start_weights(config, image_shape, start_weights))
    order, optimizer = start_training(model, config, x_train)
    history, done = [], 0
    if resume is not None:
        done, history = _restore(resume, config, optimizer, order, model, hooks)
    scored = set(checkpoint_epochs(config.epochs))
    kept = scored if keep is not None else set()
    n, batch = len(x_train), config.batch_size
    bar = progress_bar(range(done + 1, config.epochs + 1), config.label(), progress)
    for epoch in bar:
        started = time.perf_counter()
        names, sums = (), None
        permutation = torch.randperm(n, generator=order).to(config.device)
        for start in range(0, n, batch):
            index = permutation[start : start + batch]
            xb, yb = x_train.index_select(0, index), y_train.index_select(0, index)
            terms = batch_terms(model, config, x_train, xb, yb, order)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"{config.label()}: loss became {float(loss.detach())} in epoch {epoch}; nothing was cached"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # the terms' sums over the epoch, all in one tensor
                values = torch.stack(tuple(terms.values())) * len(index)
                if sums is None:
                    names, sums = tuple(terms), values
                else:
                    sums += values
        row = {"epoch": epoch, "samples": epoch * n, "seconds": time.perf_counter() - started}
        totals = [] if sums is None else sums.tolist()
        row.update({f"train_{name}": total / n for name, total in zip(names, totals)})
        if len(x_test) and epoch in scored:
            row.update({f"test_{k}": v for k, v in evaluate(model, x_test, y_test, config).items()})
        with torch.no_grad():
            model.eval()
            for hook in (hooks or {}).values():
                row.update(hook(model, split))
            model.train()
        history.append(row)
        bar.set_postfix_str(
            f"train {row['train_loss']:.2f}" + (f" test {row['test_loss']:.2f}" if "test_loss" in row else ""),
            refresh=False,
        )
        if epoch in kept:
            check_finite(config.replace(epochs=epoch), model, history)
            keep(epoch, run_state(epoch, model, optimizer, order, history, config.device))
    bar.close()
    model.eval()
    check_finite(config, model, history)
    return Run(config, model, history, from_cache=False, image_shape=image_shape)


def run_state(epoch: int, model, optimizer, order: torch.Generator, history: list, device: str) -> dict:
    """Everything a run needs to go on after ``epoch``, as plain data on the CPU."""
    state = {
        "epoch": epoch,
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": _to_cpu(optimizer.state_dict()),
        "rng": torch.get_rng_state(),
        "order": order.get_state(),
        "history": [dict(row) for row in history],
    }
    if device.startswith("cuda"):
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


def _to_cpu(value):
    if torch.is_tensor(value):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _restore(state: Mapping, config: ExperimentConfig, optimizer, order: torch.Generator, model, hooks) -> tuple:
    """Put a kept state back (the model's weights are already loaded); (its epoch, its history)."""
    optimizer.load_state_dict(state["optimizer"])
    order.set_state(state["order"])
    torch.set_rng_state(state["rng"])
    if config.device.startswith("cuda") and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"])
    history = [dict(row) for row in state["history"]]
    for hook in (hooks or {}).values():
        if hasattr(hook, "resume"):  # a hook that remembers earlier epochs picks up where it was
            hook.resume(model, history)
    return int(state["epoch"]), history


def warm_start_weights(config: ExperimentConfig, image_shape: tuple, start: Mapping[str, torch.Tensor]) -> dict:
    """The weights a config with ``init_from`` starts from: ``start`` (the first model's trained
    weights), except the modules in ``config.reinit``, which get a fresh initialisation drawn
    independently of the one the first model started from (seeded by this config's key;
    P §2.3's "randomly initialized" new decoder)."""
    fresh = {}
    if config.reinit:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config.key()[:8], 16))
            fresh = build_model(config, image_shape).state_dict()
    return {k: (fresh[k] if k.split(".")[0] in config.reinit else v) for k, v in start.items()}


def progress_bar(iterable, description: str, enabled: bool = True):
    """A progress bar over epochs: a widget in JupyterLab (``tqdm.auto``), plain text to stdout
    under papermill, nbval and in logs (``GEOVAE_PLAIN_PROGRESS`` or ``GEOVAE_BOOK_RUN`` set, or
    a papermill parameters cell in the kernel's history)."""
    if plain_progress():
        return tqdm_std(
            iterable, desc=description, disable=not enabled, file=sys.stdout, ncols=100, mininterval=5.0, ascii=True
        )
    return tqdm_auto(iterable, desc=description, disable=not enabled, mininterval=1.0)


def plain_progress() -> bool:
    if os.environ.get("GEOVAE_PLAIN_PROGRESS") or os.environ.get("GEOVAE_BOOK_RUN"):
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    history = shell.user_ns.get("In", []) if shell is not None else []
    return shell is None or any(isinstance(cell, str) and cell.startswith("# Parameters") for cell in history)


def check_finite(config: ExperimentConfig, model: torch.nn.Module, history: list) -> None:
    """Raise TrainingDivergedError naming the NaN/inf weight tensors and recorded metrics."""
    bad = [
        f"weight {name}"
        for name, value in model.state_dict().items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    bad += [
        f"{key} of epoch {row['epoch']}"
        for row in history
        for key, value in row.items()
        if isinstance(value, numbers.Real) and not math.isfinite(value)
    ]
    if bad:
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        raise TrainingDivergedError(
            f"{config.label()}: {', '.join(bad[:4])}{more} not finite after training; nothing was cached"
        )
