"""Training speed of geovae's loop against the pytorch/examples way, and what each piece adds.

The model is K's VAE (784-500-20, tanh; Adagrad with weight decay 1/60,000, batch 100) on
MNIST's 60,000 training images. The baseline follows pytorch/examples vae/main.py:
torchvision's MNIST with ToTensor through a DataLoader (shuffle, batch 100), sigmoid output
and BCE. Each further row adds one piece to the row above it, up to geovae's own ``train``:

  + in-memory index batches   one decoded tensor, batches taken by a random permutation
  + fused optimiser           ``Adagrad(fused=True)``, one kernel for all parameters
  + BCE from logits           geovae's loss terms (``bernoulli_nll``, KL) instead of
                              sigmoid + ``binary_cross_entropy``
  + loop bookkeeping as before issue 11: the loss-term dict, a NaN check per step, and a sum
                              per term (the geovae loop as it was)
  + leaner bookkeeping        ``index_select`` batches, the terms' sums in one stacked tensor,
                              weight-1 terms added without a multiplication (same numbers)
  + subnormals flushed        ``training.flushing_denormals`` around the steps, in every
                              OpenMP thread (K's weight decay drives the weights of MNIST's
                              blank pixels through subnormal floats; same losses to the bit)
  + closed-form gradient      ``closed_form.Gradient`` (through ``training.gradient_function``,
                              as ``train`` takes it): the same forward pass and loss terms,
                              the backward pass written out instead of autograd's (the same
                              gradient up to float rounding), its products by MKL
  + products by oneDNN        ``closed_form.linear`` as ``train`` takes it: oneDNN on AMD's
                              CPUs, where MKL runs AVX2 code (elsewhere MKL: the row above)
  geovae loop (all)           ``geovae_core.train`` itself

A last row is no loop but its floor: the same 11 matrix products per batch (the four layers'
forward, their weight gradients and three input gradients, by ``closed_form.linear`` as the
loop takes them) and the fused Adagrad step, with
no activation, loss, sampling or bookkeeping. A loop that computes these products and takes
this step cannot take less; what geovae's loop takes beyond it is the price of everything
elementwise and of its bookkeeping.

The rows run interleaved, one epoch each per round (A/B/A/B...), so that all see the same
machine load; the table gives the median seconds per 60,000-image epoch (training only) and
the ratio to the baseline.

    .venv/bin/python benchmarks/bench_training.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import time
from unittest import mock

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader

from geovae_core import ExperimentConfig, closed_form, train
from geovae_core.data import data_root, load_dataset
from geovae_core.losses import LOSS_TERMS, bernoulli_nll, kl_to_standard_normal
from geovae_core.models import build_model
from geovae_core.storage import cache_dir
from geovae_core.training import flushing_denormals, gradient_function

TARGET_SECONDS = 1.5
TARGET_SPEED_UP = 3.0
FLOOR = "floor: matrix products and Adagrad step alone"


def config(epochs: int) -> ExperimentConfig:
    return ExperimentConfig(
        model="kth", latent_dim=20, lr=0.02, weight_decay=1 / 60000, epochs=epochs, test_size=0, device="cpu"
    )


def torchvision_root() -> str:
    """A writable copy of the archives for torchvision's MNIST class (it extracts beside them)."""
    root = cache_dir() / "bench-torchvision"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    source = data_root()
    for filename, _ in torchvision.datasets.MNIST.resources:
        if source is not None and not (raw / filename).exists():
            shutil.copy(source / "MNIST" / "raw" / filename, raw / filename)
    return str(root)


def _model_and_optimizer(fused: bool):
    cfg = config(1)
    model = build_model(cfg, (1, 28, 28))
    optimizer = torch.optim.Adagrad(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **({"fused": True} if fused else {})
    )
    return cfg, model, optimizer


def _examples_loss(out, data):
    """pytorch/examples vae/main.py's loss: BCE of the sigmoid output plus KL, per image."""
    recon = torch.sigmoid(out["logits"])
    return (
        F.binary_cross_entropy(recon, data.view(-1, 784), reduction="sum")
        + kl_to_standard_normal(out["mu"], out["logvar"]).sum()
    ) / len(data)


def dataloader_epochs():
    """The baseline: torchvision's MNIST through a DataLoader, as pytorch/examples does it."""
    dataset = torchvision.datasets.MNIST(
        torchvision_root(), train=True, download=True, transform=torchvision.transforms.ToTensor()
    )
    loader = DataLoader(dataset, batch_size=100, shuffle=True)
    _, model, optimizer = _model_and_optimizer(fused=False)
    while True:
        started = time.perf_counter()
        for data, _ in loader:
            optimizer.zero_grad()
            loss = _examples_loss(model(data), data)
            loss.backward()
            optimizer.step()
        yield time.perf_counter() - started


def _old_loss_terms(x, y, out, cfg) -> dict:
    """``losses.loss_terms`` as it was: every term multiplied by its weight, summed from 0."""
    terms = {name: LOSS_TERMS[name](x, y, out, cfg).mean() for name, _ in cfg.loss_terms}
    terms["loss"] = sum(weight * terms[name] for name, weight in cfg.loss_terms)
    return terms


def in_memory_epochs(
    images, *, fused: bool, loss: str, bookkeeping: str, flush: bool = False, closed: bool = False, onednn=True
):
    """One epoch per ``next``: batches of 100 by index from ``images``. ``loss``: "examples"
    (sigmoid + BCE) or "geovae" (its loss terms); ``bookkeeping``: "none" (just the loss),
    "old" (the loop before issue 11) or "new" (the loop now: the terms and gradient from
    ``training.gradient_function``, in closed form with ``closed``, else by autograd);
    ``onednn=False`` keeps the closed form's products on MKL."""
    cfg, model, optimizer = _model_and_optimizer(fused)
    order = torch.Generator().manual_seed(0)
    gradient = gradient_function(model, cfg, images, order, optimizer, closed) if bookkeeping == "new" else None
    products = (
        contextlib.nullcontext
        if onednn
        else lambda: mock.patch.object(closed_form, "_products_by_onednn", lambda: False)
    )
    n, batch = len(images), 100
    while True:
        started = time.perf_counter()
        permutation = torch.randperm(n, generator=order)
        sums, names = {}, None
        with flushing_denormals() if flush else contextlib.nullcontext(), products():
            for start in range(0, n, batch):
                index = permutation[start : start + batch]
                xb = images[index] if bookkeeping != "new" else images.index_select(0, index)
                if gradient is not None:
                    terms = gradient(xb, None)
                else:
                    out = model(xb)
                    if loss == "examples":
                        value = _examples_loss(out, xb)
                    elif bookkeeping == "none":
                        value = (
                            bernoulli_nll(out["logits"], xb.flatten(1)).mean()
                            + kl_to_standard_normal(out["mu"], out["logvar"]).mean()
                        )
                    else:
                        terms = _old_loss_terms(xb, None, out, cfg)
                        value = terms["loss"]
                    optimizer.zero_grad()
                    value.backward()
                if bookkeeping != "none" and not torch.isfinite(terms["loss"]):
                    raise RuntimeError("the loss diverged")
                optimizer.step()
                if bookkeeping == "old":
                    for name, term in terms.items():
                        sums[name] = sums.get(name, 0.0) + term.detach() * len(index)
                elif bookkeeping == "new":
                    with torch.no_grad():
                        values = torch.stack(tuple(terms.values())) * len(index)
                        if names is None:
                            names, sums = tuple(terms), values
                        else:
                            sums += values
        if bookkeeping != "none":  # the epoch's means, as train records them
            means = [float(total) / n for total in (sums.values() if isinstance(sums, dict) else sums)]
            assert len(means) == 3
        yield time.perf_counter() - started


def floor_epochs(images):
    """The floor: K's VAE's matrix products and fused Adagrad step, nothing else (lr 0, so that
    the weights stay at their initial scale; the step costs the same)."""
    _, model, _ = _model_and_optimizer(fused=True)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.0, weight_decay=1 / 60000, fused=True)
    layers = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    for layer in layers:
        layer.weight.grad, layer.bias.grad = torch.zeros_like(layer.weight), torch.zeros_like(layer.bias)
    order = torch.Generator().manual_seed(0)
    n, batch = len(images), 100
    while True:
        started = time.perf_counter()
        permutation = torch.randperm(n, generator=order)
        with torch.no_grad(), flushing_denormals():
            for start in range(0, n, batch):
                inputs = [images.index_select(0, permutation[start : start + batch]).flatten(1)]
                for layer in layers:  # the latent layer's first half feeds the decoder, as z would
                    out = closed_form.linear(inputs[-1], layer.weight, layer.bias)
                    inputs.append(out[:, : layer.out_features // 2].contiguous() if layer is layers[1] else out)
                d_out = inputs[-1]
                for index in reversed(range(len(layers))):
                    layer = layers[index]
                    if index == 1:  # both halves of the latent layer's output get a gradient, as mu and logvar do
                        d_out = torch.cat([d_out, d_out], dim=1)
                    layer.weight.grad = closed_form.linear(d_out.t(), inputs[index].t())
                    torch.sum(d_out, dim=0, out=layer.bias.grad)
                    if index:  # the first layer's input is the image: no gradient
                        d_out = closed_form.linear(d_out, layer.weight.t())
                optimizer.step()
        yield time.perf_counter() - started


def geovae_epochs():
    """``geovae_core.train`` itself, one one-epoch run per ``next`` (its own epoch timing)."""
    while True:
        yield train(config(1), progress=False).final["seconds"]


def rows(images: torch.Tensor) -> dict:
    """The benchmark's rows: a generator per row, each ``next`` one epoch's seconds. The
    in-memory rows and the floor batch ``images``; the baseline and ``train`` read MNIST."""
    return {
        "DataLoader loop (baseline)": dataloader_epochs(),
        "+ in-memory index batches": in_memory_epochs(images, fused=False, loss="examples", bookkeeping="none"),
        "+ fused optimiser": in_memory_epochs(images, fused=True, loss="examples", bookkeeping="none"),
        "+ BCE from logits (geovae's loss terms)": in_memory_epochs(
            images, fused=True, loss="geovae", bookkeeping="none"
        ),
        "+ loop bookkeeping as before issue 11": in_memory_epochs(images, fused=True, loss="geovae", bookkeeping="old"),
        "+ leaner bookkeeping (index_select, one sum)": in_memory_epochs(
            images, fused=True, loss="geovae", bookkeeping="new"
        ),
        "+ subnormals flushed in every thread": in_memory_epochs(
            images, fused=True, loss="geovae", bookkeeping="new", flush=True
        ),
        "+ closed-form gradient (no autograd)": in_memory_epochs(
            images, fused=True, loss="geovae", bookkeeping="new", flush=True, closed=True, onednn=False
        ),
        "+ products by oneDNN (on AMD's CPUs)": in_memory_epochs(
            images, fused=True, loss="geovae", bookkeeping="new", flush=True, closed=True
        ),
        "geovae loop (all): geovae_core.train": geovae_epochs(),
        FLOOR: floor_epochs(images),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="epochs of each row, interleaved (median)")
    args = parser.parse_args()
    images = load_dataset("mnist").train_images  # decoded once, outside the timing
    torch.manual_seed(0)
    rows_by_label = rows(images)
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, products by "
        f"{'oneDNN' if closed_form._products_by_onednn() else 'MKL'}, load average {load:.2f} at the start; "
        f"{args.rounds} interleaved rounds of one epoch per row"
    )
    times = {label: [] for label in rows_by_label}
    for _ in range(args.rounds):
        for label, epochs in rows_by_label.items():
            times[label].append(next(epochs))
    base = statistics.median(times["DataLoader loop (baseline)"])
    print(f"{'':46}{'s/epoch':>9}{'x baseline':>12}   epochs (s)")
    for label, values in times.items():
        if label == FLOOR:
            print("no loop, the floor under any loop with these products and this optimiser step:")
        median = statistics.median(values)
        print(f"{label:46}{median:9.2f}{base / median:11.1f}x   {' '.join(f'{t:.2f}' for t in values)}")
    ours = statistics.median(times["geovae loop (all): geovae_core.train"])
    print(
        f"load average {os.getloadavg()[0]:.2f} at the end. geovae: {ours:.2f} s/epoch (target <= {TARGET_SECONDS}: "
        f"{'met' if ours <= TARGET_SECONDS else 'NOT met'}), {base / ours:.1f}x the DataLoader loop "
        f"(target >= {TARGET_SPEED_UP:.0f}x: {'met' if base / ours >= TARGET_SPEED_UP else 'NOT met'}); "
        f"{ours - statistics.median(times[FLOOR]):.2f} s above the floor"
    )


if __name__ == "__main__":
    main()
