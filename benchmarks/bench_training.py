"""Training speed of geovae's loop against the pytorch/examples way, in one run.

The model is K's VAE (784-500-20, tanh; Adagrad, batch 100). The baseline follows
pytorch/examples vae/main.py: torchvision's MNIST with ToTensor through a DataLoader
(shuffle, batch 100), sigmoid output and BCE. geovae takes batches by index from one
in-memory tensor. Seconds per 60,000-image epoch (training only) are printed with their ratio.

    .venv/bin/python benchmarks/bench_training.py [--epochs 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader

from geovae_core import ExperimentConfig, train
from geovae_core.data import data_root, load_dataset
from geovae_core.losses import kl_to_standard_normal
from geovae_core.models import build_model
from geovae_core.storage import cache_dir

TARGET_SECONDS = 2.5


def config(epochs: int) -> ExperimentConfig:
    return ExperimentConfig(model="kth", latent_dim=20, lr=0.02, weight_decay=1 / 60000,
                            epochs=epochs, test_size=0, device="cpu")


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


def baseline_epochs(epochs: int) -> list:
    dataset = torchvision.datasets.MNIST(torchvision_root(), train=True, download=True,
                                         transform=torchvision.transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=100, shuffle=True)
    cfg = config(epochs)
    torch.manual_seed(0)
    model = build_model(cfg, (1, 28, 28))
    optimizer = torch.optim.Adagrad(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        for data, _ in loader:
            optimizer.zero_grad()
            out = model(data)
            recon = torch.sigmoid(out["logits"])
            loss = (F.binary_cross_entropy(recon, data.view(-1, 784), reduction="sum")
                    + kl_to_standard_normal(out["mu"], out["logvar"]).sum()) / len(data)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    load_dataset("mnist")  # decode once, outside the timing
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = baseline_epochs(args.epochs)
    ours = train(config(args.epochs), progress=False).curve("seconds")
    b, o = statistics.median(base), statistics.median(ours)
    print(f"pytorch/examples loop (DataLoader + ToTensor): {b:.2f} s/epoch  {[round(t, 2) for t in base]}")
    print(f"geovae loop (in-memory tensor, index batches):  {o:.2f} s/epoch  {[round(t, 2) for t in ours]}")
    print(f"speed-up {b / o:.1f}x; target <= {TARGET_SECONDS} s/epoch: {'met' if o <= TARGET_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()
