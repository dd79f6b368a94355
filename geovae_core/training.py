"""The one training loop of the book and its per-epoch hooks (``cache.run`` caches its runs).

Batches are taken by index from in-memory tensors; every epoch records the training means of
the config's loss terms and the same terms on the test set, then whatever the hooks return.
The steps run with subnormal floats flushed to zero (``flushing_denormals``), which changes
no loss. K's models on the CPU take their gradient in closed form (``closed_form``, its
products by oneDNN on AMD's CPUs), the same as autograd's up to float rounding; every other
model, from autograd.
``benchmarks/bench_training.py`` credits each speed-up of the loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import numbers
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm as tqdm_auto
from tqdm.std import tqdm as tqdm_std

from . import closed_form
from .config import ExperimentConfig
from .data import experiment_split
from .errors import TrainingDivergedError
from .losses import loss_terms
from .models import build_model

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


def gradient_function(model, config: ExperimentConfig, x_train, order, optimizer, use_closed_form: bool = True):
    """The function that takes a batch (x, y) to its loss terms and sets every parameter's
    gradient: ``closed_form.Gradient`` where it covers the config (K's models on the CPU),
    else ``batch_terms`` and autograd."""
    if use_closed_form and closed_form.covers(config):
        return closed_form.Gradient(model, config)

    def by_autograd(xb, yb):
        terms = batch_terms(model, config, x_train, xb, yb, order)
        optimizer.zero_grad()
        terms["loss"].backward()
        return terms

    return by_autograd


@torch.no_grad()
def evaluate(model, x, y, config, chunk: int = 128) -> dict:
    """Means over (x, y) of the config's loss terms, computed in chunks. Chunks of 128:
    convolutions on the CPU run slower on much larger batches (2,000: about twice the time)."""
    model.eval()
    sums, n = {}, 0
    for start in range(0, len(x), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        for name, value in loss_terms(xb, yb, model(xb), config).items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(xb)
        n += len(xb)
    model.train()
    return {name: total / n for name, total in sums.items()}


def train(
    config: ExperimentConfig,
    hooks: Mapping[str, EpochHook] | None = None,
    progress: bool = True,
    autograd_only: bool = False,
) -> Run:
    """Train ``config`` from scratch (seeded); raise TrainingDivergedError on a NaN/inf loss,
    and at the end on a NaN/inf weight or recorded metric. ``autograd_only`` takes every
    gradient from autograd, also where ``closed_form.Gradient`` covers the config."""
    torch.manual_seed(config.seed)
    split = experiment_split(config)
    x_train, y_train, x_test, y_test = split
    model = build_model(config, tuple(x_train.shape[1:])).to(config.device)
    if config.init_from is not None:
        _warm_start(model, config, tuple(x_train.shape[1:]), progress)
    order, optimizer = start_training(model, config, x_train)
    gradient = gradient_function(model, config, x_train, order, optimizer, not autograd_only)
    n, batch = len(x_train), config.batch_size
    history = []
    bar = progress_bar(range(1, config.epochs + 1), config.label(), progress)
    for epoch in bar:
        started = time.perf_counter()
        names, sums = (), None
        permutation = torch.randperm(n, generator=order).to(config.device)
        with flushing_denormals(config.device == "cpu"):
            for start in range(0, n, batch):
                index = permutation[start : start + batch]
                xb, yb = x_train.index_select(0, index), y_train.index_select(0, index)
                terms = gradient(xb, yb)
                loss = terms["loss"]
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"{config.label()}: loss became {float(loss.detach())} in epoch {epoch}; nothing was cached"
                    )
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
        if len(x_test):
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
    bar.close()
    model.eval()
    _check_finite(config, model, history)
    return Run(config, model, history, from_cache=False, image_shape=tuple(x_train.shape[1:]))


@contextlib.contextmanager
def flushing_denormals(enabled: bool = True):
    """Flush subnormal floats (|x| < 1.2e-38) to zero, in every CPU thread PyTorch computes on,
    inside the block; the previous mode is restored after it.

    ``train`` runs its steps in this mode. Weights that weight decay drives toward zero (K's
    784-500 encoder on MNIST's always-blank pixels) pass through subnormal values, and every
    operation on those costs the CPU a microcode assist: without the flush K's VAE trains about
    a fifth slower on two threads, a third on one. The flush changes values only below 1.2e-38:
    the losses stay the same to the last bit, and such weights end at 0 instead of at 1e-40.
    ``torch.set_flush_denormal`` sets the mode of the calling thread only, and flushing there
    alone gains nothing, so it is also run in each thread of PyTorch's OpenMP pool
    (``_in_openmp_threads``)."""
    if not enabled or _flushing():
        yield
        return
    _set_flush_denormal(True)
    try:
        yield
    finally:
        _set_flush_denormal(False)


def _flushing() -> bool:
    """Whether this thread flushes subnormals: 1e-30 * 1e-9 is subnormal, or 0 when flushed."""
    return float(torch.full((1,), 1e-30) * 1e-9) == 0.0


def _set_flush_denormal(on: bool) -> None:
    torch.set_flush_denormal(on)
    if torch.get_num_threads() > 1:
        _in_openmp_threads(lambda: torch.set_flush_denormal(on))


_OPENMP_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _in_openmp_threads(function) -> bool:
    """Run ``function`` once in each of the ``torch.get_num_threads()`` threads of PyTorch's
    OpenMP team (through libgomp's ``GOMP_parallel``); False where no libgomp is loaded
    (macOS and Windows builds), where only the calling thread's mode is set."""
    openmp = _libgomp()
    if openmp is None:
        return False
    callback = _OPENMP_CALLBACK(lambda _: function())
    openmp.GOMP_parallel(callback, None, torch.get_num_threads(), 0)
    return True


@functools.cache
def _libgomp():
    """The libgomp PyTorch already loaded (its wheel's own copy, or the system's), or None."""
    here = Path(torch.__file__).parent
    candidates = [
        *sorted((here / "lib").glob("libgomp*.so*")),
        *sorted((here.parent / "torch.libs").glob("libgomp*.so*")),
        Path("libgomp.so.1"),
    ]
    for path in candidates:
        try:
            library = ctypes.CDLL(str(path), mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
            library.GOMP_parallel.argtypes = [_OPENMP_CALLBACK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            library.GOMP_parallel.restype = None
            return library
        except (OSError, AttributeError):
            continue
    return None


def _warm_start(model, config: ExperimentConfig, image_shape: tuple, progress: bool) -> None:
    """Load ``config.init_from``'s trained weights, except the modules in ``config.reinit``,
    which get a fresh initialisation drawn independently of the one the first model started
    from (seeded by this config's key; P §2.3's "randomly initialized" new decoder)."""
    from .cache import run  # cache imports this module

    start = run(config.init_from, progress=progress).model.state_dict()
    fresh = {}
    if config.reinit:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config.key()[:8], 16))
            fresh = build_model(config, image_shape).state_dict()
    model.load_state_dict({k: (fresh[k] if k.split(".")[0] in config.reinit else v) for k, v in start.items()})


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


def _check_finite(config: ExperimentConfig, model: torch.nn.Module, history: list) -> None:
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


def select_step_size(config: ExperimentConfig, candidates, epochs: int, train_size: int | None, progress: bool = True):
    """K's step-size search: train ``epochs`` epochs with each candidate and keep the one
    with the lowest final training loss. Returns (best, {candidate: final loss or inf})."""
    from .cache import run  # cache imports this module

    finals = {}
    for lr in candidates:
        trial = config.replace(lr=lr, epochs=epochs, train_size=train_size, test_size=0)
        try:
            finals[lr] = run(trial, progress=progress).final["train_loss"]
        except TrainingDivergedError:
            finals[lr] = math.inf
    return min(finals, key=finals.get), finals
