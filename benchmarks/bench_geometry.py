"""Speed of the vectorised latent measures: Dynamic Latent Coverage (P Algorithm 1) for
M = N = 1000 codes in 128 dimensions (target: under 0.5 s on a 2-core CPU), nearest-code
assignment, and CV-NND over 16 batches of 128 codes drawn 1,000 times.

    .venv/bin/python benchmarks/bench_geometry.py
"""

from __future__ import annotations

import statistics
import time

import torch

from geovae_core.codebook import nearest_codes
from geovae_core.geometry import cv_nnd, dynamic_latent_coverage

DLC_TARGET_SECONDS = 0.5


def timed(function, repeats: int = 5) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    g = torch.Generator().manual_seed(0)
    mu, prior = torch.randn(1000, 128, generator=g), torch.randn(1000, 128, generator=g)
    dlc = timed(lambda: dynamic_latent_coverage(mu, prior))
    print(
        f"Dynamic Latent Coverage, M = N = 1000, 128 dims: {dlc * 1000:.1f} ms "
        f"(target < {DLC_TARGET_SECONDS * 1000:.0f} ms: {'met' if dlc < DLC_TARGET_SECONDS else 'NOT met'})"
    )
    vectors, codes = torch.randn(100 * 49, 64, generator=g), torch.randn(512, 64, generator=g)
    print(
        f"nearest codes, 4,900 vectors (100 maps of 7 x 7) against 512 codes of 64 dims: "
        f"{timed(lambda: nearest_codes(vectors, codes)) * 1000:.1f} ms"
    )
    draws = torch.randn(1000, 128, 16, generator=g)
    print(
        f"CV-NND of one batch of 128 codes drawn 1,000 times: {timed(lambda: cv_nnd(draws)) * 1000:.1f} ms "
        f"(x 16 batches per epoch)"
    )


if __name__ == "__main__":
    main()
