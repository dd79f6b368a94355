"""Training speed: geovae's loop against the pytorch/examples way, what each piece adds, and
the faster paths the loop does not take (``torch.compile``), with N11's training time at the
``quick`` and ``paper`` budgets for each.

The model is K's VAE (784-500-20, tanh; Adagrad with weight decay 1/60,000, batch 100) on
MNIST's 60,000 training images. The baseline follows pytorch/examples vae/main.py:
torchvision's MNIST with ToTensor through a DataLoader (shuffle, batch 100), sigmoid output
and BCE. Each further row adds one piece to the row above it, up to geovae's own ``train``:

  + in-memory index batches   one decoded tensor, batches taken by a random permutation
  + fused optimiser           ``Adagrad(fused=True)``, one kernel for all parameters
  + BCE from logits           geovae's loss terms (``bernoulli_nll``, KL) instead of
                              sigmoid + ``binary_cross_entropy``
  geovae loop                 ``geovae_core.train`` itself: autograd, the loss terms' sums
                              kept for the history, subnormals flushed (``training``)

Two rows are paths geovae does not take, measured so that the choice stays honest:

  subnormals not flushed      ``train`` in a process that turns the flush off before torch
                              starts its threads
  torch.compile               the model's forward pass and loss terms compiled by inductor
                              (gcc) into an empty cache, in the same loop; its first epoch,
                              which compiles, is reported on its own

A last row is no loop but its floor: the layers' matrix products (forward, weight gradients,
input gradients, by ``F.linear``) and the fused Adagrad step, nothing elementwise. A loop that
computes these products and takes this step cannot take less.

Every epoch runs in a fresh process (no row runs in another's leftovers: threads, allocator,
inductor's compile workers), the rows interleaved, one epoch each per round (A/B/A/B...), so
that all see the same machine load; the table gives the median seconds per 60,000-image epoch (training only) and
the ratio to the baseline. Then N11's training at each budget: the MNIST images its runs see
(``chapters.n11``: the step-size searches, the VAEs and AEs of every latent size, track and
seed, the 2-D VAE) as 60,000-image epochs, times each path's seconds per epoch, plus, for
``torch.compile``, one compile per model shape.

    .venv/bin/python benchmarks/bench_training.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# A cold compile, as a fresh cache pays it: inductor's cache in a new folder (set before torch loads).
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from geovae_core import ExperimentConfig, train  # noqa: E402
from geovae_core.chapters import n11  # noqa: E402
from geovae_core.data import data_root, load_dataset  # noqa: E402
from geovae_core.losses import bernoulli_nll, kl_to_standard_normal  # noqa: E402
from geovae_core.models import build_model  # noqa: E402
from geovae_core.profiles import resolve  # noqa: E402
from geovae_core.storage import cache_dir  # noqa: E402

FLOOR = "floor: matrix products and Adagrad step alone"
GEOVAE = "geovae loop: geovae_core.train"
UNFLUSHED = "geovae loop, subnormals not flushed"
COMPILED = "torch.compile (after its first epoch)"


def config(epochs: int) -> ExperimentConfig:
    return ExperimentConfig(
        model="shallow_mlp", latent_dim=20, lr=0.02, weight_decay=1 / 60000, epochs=epochs, test_size=0, device="cpu"
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


def in_memory_epochs(images, *, fused: bool, loss: str, compiled: bool = False):
    """One epoch per ``next``: batches of 100 by index from ``images``. ``loss``: "examples"
    (sigmoid + BCE) or "geovae" (its loss terms); ``compiled``: the forward pass and loss terms
    through ``torch.compile`` (the first ``next`` compiles: the first epoch's time includes it)."""
    cfg, model, optimizer = _model_and_optimizer(fused)

    def step_loss(xb):
        out = model(xb)
        if loss == "examples":
            return _examples_loss(out, xb)
        return (
            bernoulli_nll(out["logits"], xb.flatten(1)).mean() + kl_to_standard_normal(out["mu"], out["logvar"]).mean()
        )

    forward = torch.compile(step_loss) if compiled else step_loss
    order = torch.Generator().manual_seed(0)
    n, batch = len(images), 100
    while True:
        started = time.perf_counter()
        permutation = torch.randperm(n, generator=order)
        for start in range(0, n, batch):
            xb = images.index_select(0, permutation[start : start + batch])
            value = forward(xb)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
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
        with torch.no_grad():
            for start in range(0, n, batch):
                inputs = [images.index_select(0, permutation[start : start + batch]).flatten(1)]
                for layer in layers:  # the latent layer's first half feeds the decoder, as z would
                    out = F.linear(inputs[-1], layer.weight, layer.bias)
                    inputs.append(out[:, : layer.out_features // 2].contiguous() if layer is layers[1] else out)
                d_out = inputs[-1]
                for index in reversed(range(len(layers))):
                    layer = layers[index]
                    if index == 1:  # both halves of the latent layer's output get a gradient, as mu and logvar do
                        d_out = torch.cat([d_out, d_out], dim=1)
                    layer.weight.grad = F.linear(d_out.t(), inputs[index].t().contiguous())
                    torch.sum(d_out, dim=0, out=layer.bias.grad)
                    if index:  # the first layer's input is the image: no gradient
                        d_out = F.linear(d_out, layer.weight.t())
                optimizer.step()
        yield time.perf_counter() - started


def geovae_epochs():
    """``geovae_core.train`` itself, one one-epoch run per ``next`` (its own epoch timing)."""
    while True:
        yield train(config(1), progress=False).final["seconds"]


def rows(images: torch.Tensor) -> dict:
    """The benchmark's rows run in this process: a generator per row, each ``next`` one epoch's
    seconds. The in-memory rows and the floor batch ``images``; the baseline and ``train`` read MNIST."""
    return {
        "DataLoader loop (baseline)": dataloader_epochs(),
        "+ in-memory index batches": in_memory_epochs(images, fused=False, loss="examples"),
        "+ fused optimiser": in_memory_epochs(images, fused=True, loss="examples"),
        "+ BCE from logits (geovae's loss terms)": in_memory_epochs(images, fused=True, loss="geovae"),
        GEOVAE: geovae_epochs(),
        UNFLUSHED: geovae_epochs(),  # the same loop; its process turns the flush off (``one_row``)
        COMPILED: in_memory_epochs(images, fused=True, loss="geovae", compiled=True),
        FLOOR: floor_epochs(images),
    }


def n11_epochs(profile: str) -> tuple:
    """(MNIST images N11's training sees, as 60,000-image epochs; its distinct model shapes) at ``profile``."""
    params = resolve("N11", n11.SETTINGS, profile, device="cpu")
    searches = n11.step_size_searches(params)
    images = sum(
        len(params.lr_candidates) * params.lr_search_epochs * min(params.lr_search_size, c.train_size or 60000)
        for c in searches.values()
    )
    configs = n11.trained_configs(params, {key: 0.02 for key in searches})
    images += sum(c.epochs * min(c.train_size or 60000, 60000) for c in configs.values())
    shapes = {(c.latent, c.latent_dim) for c in [*configs.values(), *searches.values()]}
    return images / 60000, len(shapes)


def one_row(label: str, epochs: int) -> list:
    """In this (fresh) process: ``epochs`` epochs of the row ``label`` on MNIST, their seconds."""
    if label == UNFLUSHED:
        torch.set_flush_denormal(False)  # before torch starts its threads, which inherit it
    images = load_dataset("mnist").train_images
    torch.manual_seed(0)
    row = rows(images)[label]
    return [next(row) for _ in range(epochs)]


def in_fresh_process(label: str, epochs: int = 1) -> list:
    """``one_row`` in a new process, so that no row runs in another's leftovers (threads,
    allocator, inductor's compile workers)."""
    done = subprocess.run(
        [sys.executable, __file__, "--row", label, "--epochs", str(epochs)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="epochs of each row, interleaved (median)")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row in this process (in_fresh_process)
    parser.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(one_row(args.row, args.epochs)))
        return
    load_dataset("mnist")  # decoded once, outside the timing
    labels = list(rows(torch.zeros(1, 1, 28, 28)))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.2f} at the start; "
        f"{args.rounds} interleaved rounds of one epoch per row, each in a fresh process"
    )
    times, compile_epochs = {label: [] for label in labels}, []
    for _ in range(args.rounds):
        for label in labels:
            if label == COMPILED:  # the first epoch compiles (into an empty cache), the second is timed
                first, second = in_fresh_process(label, epochs=2)
                compile_epochs.append(first)
                times[label].append(second)
            else:
                times[label] += in_fresh_process(label)
    base = statistics.median(times["DataLoader loop (baseline)"])
    median = {label: statistics.median(values) for label, values in times.items()}
    print(f"{'':46}{'s/epoch':>9}{'x baseline':>12}   epochs (s)")
    for label in labels:
        if label == UNFLUSHED:
            print("paths geovae does not take:")
        if label == FLOOR:
            print("no loop, the floor under any loop with these products and this optimiser step:")
        values = times[label]
        print(f"{label:46}{median[label]:9.2f}{base / median[label]:11.1f}x   {' '.join(f'{t:.2f}' for t in values)}")
    compile_seconds = max(statistics.median(compile_epochs) - median[COMPILED], 0.0)
    print(
        f"torch.compile's first epoch: {statistics.median(compile_epochs):.1f} s, of which compiling about "
        f"{compile_seconds:.1f} s (a cold compile, per model shape)"
    )
    print(f"N11's training (60,000-image epochs of K's VAE at the speeds above; load {os.getloadavg()[0]:.2f}):")
    for profile in ("quick", "paper"):
        epochs, shapes = n11_epochs(profile)
        autograd = epochs * median[GEOVAE]
        compiled = epochs * median[COMPILED] + shapes * compile_seconds
        print(
            f"  {profile:6} {epochs:9,.0f} epochs: autograd (geovae) {duration(autograd)}; torch.compile "
            f"{duration(compiled)} ({shapes} shapes compiled), {100 * (autograd - compiled) / autograd:+.0f}%; "
            f"without the flush {duration(epochs * median[UNFLUSHED])}, "
            f"{100 * (autograd - epochs * median[UNFLUSHED]) / autograd:+.0f}%"
        )


def duration(seconds: float) -> str:
    return f"{seconds / 60:6.1f} min" if seconds < 3600 else f"{seconds / 3600:6.1f} h"


if __name__ == "__main__":
    main()
