"""Training speed of the book's convolutional models on a CPU, in seconds per 1,000 images
(forward, backward and one Adam step per batch), for each memory layout and thread setting.

Rows are the conv models of the ``quick`` profile: CelebA 64 x 64 x 3 conv AEs (N1, N4, N6,
N7, N8) with channels [16, 32, 64, 128] or [32, 64, 128, 256], batch 32 or 64, latent 128 or
786; FashionMNIST's VQ-AE with a 7 x 7 map of 64 channels (N10); MNIST's conv AE (N8).
Columns: NCHW (contiguous) or channels_last (NHWC) tensors, oneDNN (``torch.backends.mkldnn``)
on or off, 1 or 2 threads. Images are random: the time does not depend on the pixels. "best"
gives the fastest setting and its speed-up over the first column, the training loop's own.

``train`` keeps NCHW, oneDNN on (torch's default) and all threads: channels_last gains on some
models here, but its convolutions round differently, which Adam's first steps and the
codebook's nearest-code assignments amplify (the same seed would no longer give the same
numbers). The table this prints says what each setting gains on the machine it runs on.

    .venv/bin/python benchmarks/bench_conv.py          # the layouts at the default threads
    .venv/bin/python benchmarks/bench_conv.py --full   # every layout x oneDNN x threads
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

import torch

from geovae_core import ExperimentConfig
from geovae_core.losses import loss_terms
from geovae_core.models import build_model

_AE = dict(activation="relu", likelihood="mse", optimizer="adam", lr=1e-3, init_std=None, loss_terms=(("recon", 1.0),))
CELEBA = (3, 64, 64)


def celeba_conv(latent: str, latent_dim: int, widths: tuple, batch_size: int, **overrides) -> ExperimentConfig:
    """A CelebA 64 x 64 conv model of the book, trained as an AE (``overrides`` change that)."""
    return ExperimentConfig(
        model="conv",
        dataset="celeba",
        latent=latent,
        latent_dim=latent_dim,
        widths=widths,
        batch_size=batch_size,
        **{**_AE, **overrides},
    )


# (row label, config, image shape)
MODELS = [
    ("CelebA conv AE [32..256] z=786, batch 32 (N1, N6)", celeba_conv("point", 786, (32, 64, 128, 256), 32), CELEBA),
    (
        "CelebA conv VAE [32..256] z=128, batch 64 (N4)",
        celeba_conv("sampled", 128, (32, 64, 128, 256), 64, loss_terms=(("recon", 1.0), ("kl", 1.0))),
        CELEBA,
    ),
    ("CelebA conv AE [16..128] z=128, batch 64 (N7, N8)", celeba_conv("point", 128, (16, 32, 64, 128), 64), CELEBA),
    ("CelebA conv AE [16..128] z=786, batch 32", celeba_conv("point", 786, (16, 32, 64, 128), 32), CELEBA),
    (
        "FashionMNIST VQ-AE conv_map [32, 64], 7x7x64 map, batch 64 (N10)",
        ExperimentConfig(
            model="conv_map",
            dataset="fashion_mnist",
            latent="codebook",
            latent_dim=64,
            map_shape=(7, 7),
            widths=(32, 64),
            codebook_size=64,
            codebook_decay=0.99,
            batch_size=64,
            **{**_AE, "loss_terms": (("recon", 1.0), ("pull", 0.1))},
        ),
        (1, 28, 28),
    ),
    (
        "MNIST conv AE [32, 64] z=16, batch 64 (N8)",
        ExperimentConfig(model="conv", latent="point", latent_dim=16, widths=(32, 64), batch_size=64, **_AE),
        (1, 28, 28),
    ),
]


def step_seconds_per_1000(config, shape, channels_last: bool, mkldnn: bool, threads: int, images: int) -> float:
    """Seconds per 1,000 images of training steps on random images, after two warm-up steps."""
    torch.set_num_threads(threads)
    previous = torch.backends.mkldnn.set_flags(mkldnn, None, None, None)
    try:
        torch.manual_seed(0)
        model = build_model(config, shape)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=layout)
        data = torch.rand(images + 2 * config.batch_size, *shape).contiguous(memory_format=layout)
        if hasattr(model, "initialise_codebook"):
            model.initialise_codebook(data, torch.Generator().manual_seed(0))
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)

        def step(xb):
            terms = loss_terms(xb, None, model(xb), config)
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()

        batch = config.batch_size
        for start in range(0, 2 * batch, batch):
            step(data[start : start + batch])
        started = time.perf_counter()
        for start in range(2 * batch, len(data), batch):
            step(data[start : start + batch])
        return (time.perf_counter() - started) / images * 1000
    finally:
        torch.backends.mkldnn.set_flags(previous[0], None, None, None)


def settings_label(channels_last: bool, mkldnn: bool, threads: int) -> str:
    return f"{'NHWC' if channels_last else 'NCHW'} {'dnn' if mkldnn else 'nodnn'} {threads}t"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="every layout x oneDNN x threads 2 and 1 (minutes)")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default: torch's)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions (median)")
    parser.add_argument("--images", type=int, default=256, help="images timed per measurement")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    threads = args.threads or ([2, 1] if args.full else [default_threads])
    onednn = (True, False) if args.full else (True,)
    settings = [(layout, dnn, n) for n, dnn, layout in itertools.product(threads, onednn, (False, True))]
    rounds, images = args.rounds, args.images
    print(
        f"torch {torch.__version__}, {default_threads} threads by default, load average {os.getloadavg()[0]:.2f}; "
        f"seconds per 1,000 training images (forward + backward + Adam), median of {rounds} interleaved rounds "
        f"of {images} images"
    )
    header = "".join(f"{settings_label(*s):>16}" for s in settings)
    print(f"{'model':68}{header}   best (x the first column)")
    for label, config, shape in MODELS:
        times = {s: [] for s in settings}
        for _ in range(rounds):
            for s in settings:
                times[s].append(step_seconds_per_1000(config, shape, *s, images=images))
        medians = {s: statistics.median(t) for s, t in times.items()}
        best = min(medians, key=medians.get)
        print(
            f"{label:68}"
            + "".join(f"{medians[s]:16.2f}" for s in settings)
            + f"   {settings_label(*best)} ({medians[settings[0]] / medians[best]:.2f}x)",
            flush=True,
        )
    torch.set_num_threads(default_threads)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
