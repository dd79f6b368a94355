"""Latent geometry: P's CV of nearest-neighbour distances (§2.1) and Dynamic Latent Coverage
(§3.1, Algorithm 1), latent paths (perturbations, interpolations) and how even they are.

All vectorised over points: no Python loop over codes. Distances are exact: computed in
float64 after centring on the first set's mean, so codes far from the origin lose no precision
(``torch.cdist``'s float32 matrix-product path does, from an offset of about 10^3).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from pathlib import Path

import torch

from .storage import paid_once


def distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of a [..., N, D] and b [..., M, D], as float64."""
    a, b = a.double(), b.double()
    centre = a.mean(dim=-2, keepdim=True)
    return torch.cdist(a - centre, b - centre, compute_mode="donot_use_mm_for_euclid_dist")


def nearest_neighbour_sq_distances(z: torch.Tensor) -> torch.Tensor:
    """d_i = min_{j != i} ||z_i - z_j||^2 for codes z [..., N, D] (batched over leading dims)."""
    d = distances(z, z).pow(2)
    d.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
    return d.min(dim=-1).values


def cv_nnd(z: torch.Tensor) -> torch.Tensor:
    """CV = s / mean of the squared nearest-neighbour distances within one batch of codes
    (P §2.1; s is the sample standard deviation). Batched over leading dims."""
    d = nearest_neighbour_sq_distances(z)
    return d.std(dim=-1) / d.mean(dim=-1)


@torch.no_grad()
def latent_cv_nnd(
    model, x: torch.Tensor, batches: int = 16, batch_size: int = 128, draws: int = 1000, seed: int = 0
) -> dict:
    """P Fig 2b's measurement on test images x: the CV-NND of each of ``batches`` batches of
    ``batch_size`` codes, averaged, read two ways that compare like with like across models:
    ``cv_nnd_mu`` on the encoder's means mu, and ``cv_nnd_sampled`` on reparameterised codes
    z = mu + sigma * eps drawn ``draws`` times per batch with each model's own sigma (our reading
    of "each batch sampled 1,000 times"; NaN for an encoder without a variance)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    on_mu, sampled = [], []
    for b in range(batches):
        xb = x[b * batch_size : (b + 1) * batch_size]
        if len(xb) < 2:
            break
        mu, logvar = model.encode(xb)
        on_mu.append(cv_nnd(mu))
        if logvar is not None:
            eps = torch.randn(draws, *mu.shape, generator=generator, device=mu.device)
            sampled.append(cv_nnd(mu + torch.exp(0.5 * logvar) * eps).mean())
    return {
        "cv_nnd_mu": float(torch.stack(on_mu).mean()),
        "cv_nnd_sampled": float(torch.stack(sampled).mean()) if sampled else float("nan"),
    }


def cv_nnd_hook(batches: int = 16, batch_size: int = 128, draws: int = 1000) -> dict:
    """A per-epoch hook (see ``cache.run``) recording ``latent_cv_nnd`` on the test set."""

    def hook(model, split):
        return latent_cv_nnd(model, split[2], batches, batch_size, draws)

    return {f"cv_nnd-{batches}x{batch_size}x{draws}": hook}


def dynamic_latent_coverage(mu: torch.Tensor, prior: torch.Tensor, k_nn: int = 5, eta: float = 95.0) -> tuple:
    """P Algorithm 1: tau is the eta-th percentile of the distances from each mu_i to its
    2nd..k_nn-th nearest other code (the closest is skipped); coverage is the share of prior
    samples whose nearest mu is closer than tau. Returns (coverage, tau)."""
    d = distances(mu, mu)
    d.fill_diagonal_(float("inf"))
    neighbours = d.topk(k_nn, dim=1, largest=False).values[:, 1:]
    tau = torch.quantile(neighbours.flatten(), eta / 100.0)
    nearest = distances(prior, mu).min(dim=1).values
    return float((nearest < tau).float().mean()), float(tau)


def coverage_hook(size: int = 1000, k_nn: int = 5, eta: float = 95.0, seed: int = 0) -> dict:
    """A per-epoch hook recording Dynamic Latent Coverage and tau: the first ``size`` test
    images are the fixed evaluation set (M) and ``size`` fixed prior samples are N. It also
    records ``coverage_first_tau``, the coverage with tau held at its first epoch's value: what
    a fixed radius would have reported (P: "tau changes across epochs, which justifies the
    necessity of our adaptive radius")."""
    first = {}

    def hook(model, split):
        mu = model.encode(split[2][:size])[0]
        generator = torch.Generator().manual_seed(seed)
        prior = torch.randn(size, mu.shape[1], generator=generator).to(mu.device)
        coverage, tau = dynamic_latent_coverage(mu, prior, k_nn, eta)
        first.setdefault("tau", tau)
        nearest = distances(prior, mu).min(dim=1).values
        return {"coverage": coverage, "tau": tau, "coverage_first_tau": float((nearest < first["tau"]).float().mean())}

    def resume(model, history):  # a resumed run keeps its first epoch's tau
        first["tau"] = history[0]["tau"]

    hook.resume = resume
    return {f"coverage-{size}-{k_nn}-{eta:g}-{seed}": hook}


def interpolate(z1: torch.Tensor, z2: torch.Tensor, steps: int) -> torch.Tensor:
    """z = (1 - a) z1 + a z2 for ``steps`` values of a from 0 to 1, endpoints exact: [steps, D]."""
    alpha = torch.linspace(0, 1, steps, device=z1.device).unsqueeze(1)
    return (1 - alpha) * z1 + alpha * z2


def perturb(z: torch.Tensor, dims, deltas) -> torch.Tensor:
    """Copies of codes z [..., D] with each of ``deltas`` added to one dimension of ``dims`` at a
    time: [..., len(dims), len(deltas), D] (P Figs 4b, 7, 10)."""
    dims = list(dims)
    steps = torch.zeros(len(dims), len(deltas), z.shape[-1], dtype=z.dtype, device=z.device)
    steps[torch.arange(len(dims)), :, dims] = torch.as_tensor(deltas, dtype=z.dtype, device=z.device)
    return z[..., None, None, :] + steps


def step_sizes(paths: torch.Tensor) -> torch.Tensor:
    """RMS pixel change between consecutive frames of paths [..., T, C, H, W] -> [..., T - 1]."""
    flat = paths.flatten(-3)
    return (flat[..., 1:, :] - flat[..., :-1, :]).pow(2).mean(dim=-1).sqrt()


def unevenness(paths: torch.Tensor) -> torch.Tensor:
    """Largest step over mean step along each path [..., T, C, H, W] -> [...]: 1 for a perfectly
    even path, the number of steps for a path that changes in one step (the measure of
    ``criteria.SMOOTH``). NaN for a path that does not change at all: no transition to judge."""
    steps = step_sizes(paths)
    mean = steps.mean(dim=-1)
    return torch.where(mean > 1e-6, steps.max(dim=-1).values / mean.clamp_min(1e-12), torch.nan)


def step_unevenness(path: torch.Tensor) -> float:
    """``unevenness`` of one path [T, C, H, W]."""
    return float(unevenness(path))


SMOOTH_SHARE = 0.9  # the share of paths that must be smooth (``criteria.SMOOTH_PATHS``)


def within_share(values: torch.Tensor, share: float) -> float:
    """The value ``share`` of ``values`` stay within: the ⌈share · n⌉-th smallest (NaN left out;
    NaN when nothing is left). "At least ``share`` of the values are ≤ t" holds exactly when this is ≤ t,
    and unlike the share it moves with the values."""
    kept = values[~torch.isnan(values)].flatten().double()
    if not len(kept):
        return float("nan")
    rank = max(math.ceil(share * len(kept) - 1e-9), 1)
    return float(kept.sort().values[rank - 1])


def paths_unevenness(paths: torch.Tensor, share: float = SMOOTH_SHARE) -> float:
    """``criteria.SMOOTH_PATHS``' measure: the ``unevenness`` that ``share`` of the paths [P, T, ...]
    stay within, each path judged alone (a path that does not change at all is left out)."""
    return within_share(unevenness(paths.flatten(0, -5)), share)


def ink_lost(images: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Per image [..., C, H, W], the share of ``base``'s ink (mean intensity) it lost: 0 for as much
    ink, 1 for pure black (negative where it gained ink)."""
    return 1 - images.flatten(-3).mean(-1) / base.flatten(-3).mean(-1).clamp_min(1e-12)


class NearestImageDecoder:
    """A decoder that returns, for each code, the stored image whose code is nearest: it can only
    jump from one real image to another (the control of paths that are not smooth)."""

    def __init__(self, codes: torch.Tensor, images: torch.Tensor):
        self.codes, self.images = codes, images

    @torch.no_grad()
    def nearest(self, z: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """The index of the stored code nearest each code of z [..., D] -> [...] (distances by
        matrix products, in chunks: only their order matters here)."""
        flat = z.reshape(-1, z.shape[-1])
        found = [torch.cdist(flat[i : i + chunk], self.codes).argmin(dim=1) for i in range(0, len(flat), chunk)]
        return torch.cat(found).view(z.shape[:-1])

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.images[self.nearest(z)]

    @torch.no_grad()
    def decode_average(self, z: torch.Tensor) -> torch.Tensor:
        """The mean over the first dimension of ``decode``: z [E, ..., D] -> images [..., C, H, W],
        summed as counts of each stored image (a frame averages a few images, not E)."""
        chosen = self.nearest(z).flatten(1)  # [E, frames]
        exposures, frames = chosen.shape
        weights = torch.sparse_coo_tensor(  # repeated (frame, image) pairs add up
            torch.stack([torch.arange(frames).repeat(exposures), chosen.flatten()]),
            torch.full((exposures * frames,), 1.0 / exposures),
            (frames, len(self.images)),
        )
        average = torch.sparse.mm(weights, self.images.flatten(1))
        return average.view(*z.shape[1:-1], *self.images.shape[1:])


@torch.no_grad()
def decode(model, z: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """``model.decode`` of codes [..., D] in chunks: images [..., C, H, W]."""
    flat = z.reshape(-1, z.shape[-1])
    images = torch.cat([model.decode(flat[i : i + chunk]) for i in range(0, len(flat), chunk)])
    return images.view(*z.shape[:-1], *images.shape[1:])


EXPOSURES = 64  # codes each frame of an exposed perturbation path averages over


@torch.no_grad()
def perturbation_paths(
    model, codes: torch.Tensor, dims, deltas, exposed: torch.Generator | None = None
) -> torch.Tensor:
    """Decoded paths codes + delta along one dimension at a time (P Figs 4b, 7; R Fig 3.2):
    codes [N, D] -> images [N, len(dims), len(deltas), C, H, W]. ``exposed`` (the control of paths
    that jump, a ``NearestImageDecoder``, through its ``decode_average``): each frame averages
    ``EXPOSURES`` codes spread evenly over its own stretch of the path (δ within half a spacing
    either side, at a phase drawn from the generator), so that a decoder that jumps changes in the
    frames its boundary falls between, in proportion to where the boundary lies, rather than
    always in one whole step."""
    if exposed is None:
        return decode(model, perturb(codes, dims, deltas))
    deltas = torch.as_tensor(deltas, dtype=codes.dtype)
    phase = float(torch.rand(1, generator=exposed))
    offsets = ((torch.arange(EXPOSURES) + phase) / EXPOSURES - 0.5) * float(deltas[1] - deltas[0])
    return model.decode_average(torch.stack([perturb(codes, dims, deltas + offset) for offset in offsets]))


@torch.no_grad()
def perturbation_response(
    model, codes: torch.Tensor, dims, magnitudes, judge=None, confident: float | None = None
) -> dict:
    """P Fig 10's measures for codes [N, D], each dimension of ``dims`` shifted by +delta in turn:
    per magnitude, ``rms_change`` (RMS pixel change from the unperturbed output, averaged over
    codes and dims) and ``mean_intensity``; ``base_intensity`` of the unperturbed outputs. With a
    ``judge`` (images -> class probabilities), also ``confidence`` (the judge's mean probability
    of its predicted class) and ``morphed`` (the share judged another class than the unperturbed
    output with a probability of at least ``confident``, which a judge needs: the chapters pass
    ``criteria.DIGIT_LIKE``'s threshold; criteria stay out of the code a trained run depends on)."""
    base = decode(model, codes)
    out = {
        "magnitude": [float(m) for m in magnitudes],
        "base_intensity": float(base.mean()),
        "rms_change": [],
        "mean_intensity": [],
        "confidence": [],
        "morphed": [],
    }
    base_class = judge(base).argmax(dim=1) if judge is not None else None
    for m in magnitudes:
        images = perturbation_paths(model, codes, dims, [m])[:, :, 0]
        out["rms_change"].append(float((images - base[:, None]).flatten(2).pow(2).mean(-1).sqrt().mean()))
        out["mean_intensity"].append(float(images.mean()))
        if judge is not None:
            confidence, predicted = judge(images.flatten(0, 1)).max(dim=1)
            moved = (predicted != base_class.repeat_interleave(len(list(dims)))) & (confidence >= confident)
            out["confidence"].append(float(confidence.mean()))
            out["morphed"].append(float(moved.float().mean()))
    return out


@torch.no_grad()
def interpolation_paths(model, images: torch.Tensor, pairs: torch.Tensor, steps: int, decoder=None) -> tuple:
    """P Fig 11's paths between image ``pairs`` [P, 2] (indices into ``images``): the decoded
    latent interpolations z = (1 - a) z1 + a z2 and the pixel cross-fades (1 - a) x1 + a x2,
    ``steps`` frames each from a = 0 to 1: two tensors [P, steps, C, H, W]. The codes are the
    model's; ``decoder`` (anything with ``decode``) decodes them in its place (the controls)."""
    codes = model.encode(images[pairs.flatten()])[0].view(len(pairs), 2, -1)
    alpha = torch.linspace(0, 1, steps, device=codes.device).view(1, steps, 1)
    latent = decode(decoder or model, (1 - alpha) * codes[:, :1] + alpha * codes[:, 1:])
    x1, x2 = images[pairs[:, 0]].unsqueeze(1), images[pairs[:, 1]].unsqueeze(1)
    fade = (1 - alpha.view(1, steps, 1, 1, 1)) * x1 + alpha.view(1, steps, 1, 1, 1) * x2
    return latent, fade


def jump_paths(fade: torch.Tensor) -> torch.Tensor:
    """Paths [P, T, ...] that stay at their first frame for the first half and jump to their
    last: the control of a path that is not smooth."""
    half = fade.shape[1] // 2
    return torch.cat(
        [fade[:, :1].expand(-1, half, *fade.shape[2:]), fade[:, -1:].expand(-1, fade.shape[1] - half, *fade.shape[2:])],
        dim=1,
    )


@torch.no_grad()
def interpolation_measures(model, images: torch.Tensor, pairs: torch.Tensor, steps: int, pool: torch.Tensor) -> dict:
    """P Fig 11's measures over image ``pairs`` [P, 2] (indices into ``images``): the mean
    ``unevenness`` of the decoded latent interpolations and of the pixel cross-fades
    (1 - a) x1 + a x2, and how far their midpoints lie from the nearest image of ``pool``."""
    codes = model.encode(images[pairs.flatten()])[0].view(len(pairs), 2, -1)
    alpha = torch.linspace(0, 1, steps, device=codes.device).view(1, steps, 1)
    latent = decode(model, (1 - alpha) * codes[:, :1] + alpha * codes[:, 1:])
    x1, x2 = images[pairs[:, 0]].unsqueeze(1), images[pairs[:, 1]].unsqueeze(1)
    fade = (1 - alpha.view(1, steps, 1, 1, 1)) * x1 + alpha.view(1, steps, 1, 1, 1) * x2
    middle = steps // 2
    return {
        "unevenness": float(unevenness(latent).nanmean()),
        "crossfade_unevenness": float(unevenness(fade).nanmean()),
        "midpoint_distance": float(nearest_image_distance(latent[:, middle], pool).mean()),
        "crossfade_midpoint_distance": float(nearest_image_distance(fade[:, middle], pool).mean()),
    }


def nearest_image_distance(images: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """RMS pixel distance from each image [N, ...] to its nearest image in ``pool`` [M, ...]:
    how far an interpolation's midpoint lies from real data (P Fig 11)."""
    return (distances(images.flatten(1), pool.flatten(1)).min(dim=1).values / images[0].numel() ** 0.5).float()


def fit_ellipsoid(points: torch.Tensor, scale: float = 2.0) -> tuple:
    """An ellipsoid fitted to a point cloud [N, D]: (centre [D], radii [D], axes [D, D] as
    columns), the radii ``scale`` standard deviations along the covariance's principal axes."""
    centre = points.mean(dim=0)
    covariance = torch.cov(points.T)
    variances, axes = torch.linalg.eigh(covariance)
    return centre, scale * variances.clamp_min(0).sqrt(), axes


@functools.cache
def _cache_umap_kernels() -> None:
    """Let numba cache UMAP's compiled kernels (under ``$NUMBA_CACHE_DIR``, which the runner
    points into the cache): most are not marked for caching, so every process would compile
    them again; with this, only the first process in a cache does."""
    import umap.distances
    import umap.layouts
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts, umap.utils, umap.distances):
        for kernel in vars(module).values():
            if isinstance(kernel, CPUDispatcher):
                kernel.enable_caching()


def _umap_kernels_cached() -> bool:
    """Whether numba's cache folder (``$NUMBA_CACHE_DIR``) holds UMAP's compiled kernels; True
    where none is set (nothing to say then)."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    return not folder or any(Path(folder).glob("umap_*/*.nbi"))


def sample_map_fit(
    mu: torch.Tensor, logvar: torch.Tensor, samples: int, seed: int = 0, n_neighbors: int = 200, min_dist: float = 0.99
) -> dict:
    """P Fig 2a's sample-map-fit: draw ``samples`` points from each encoded Gaussian
    N(mu_i, sigma_i^2), map all of them to 3-D with one UMAP, and fit an ellipsoid to each
    Gaussian's projected cloud. Returns the clouds [n, samples, 3] and the ellipsoids.
    UMAP's neighbourhoods are wider than one ball's cloud (``n_neighbors`` > ``samples``), so
    the map keeps the balls' relative placement, and ``min_dist`` keeps each cloud spread out."""
    generator = torch.Generator().manual_seed(seed)
    mu, std = mu.cpu(), torch.exp(0.5 * logvar.cpu())
    points = mu[:, None] + std[:, None] * torch.randn(len(mu), samples, mu.shape[1], generator=generator)
    compiling = not _umap_kernels_cached()  # asked before importing umap, which compiles some kernels
    with paid_once("compiling UMAP's kernels (numba), in a first embedding") if compiling else contextlib.nullcontext():
        import umap

        _cache_umap_kernels()
        mapper = umap.UMAP(n_components=3, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1)
        embedding = mapper.fit_transform(points.flatten(0, 1).numpy())
    clouds = torch.from_numpy(embedding).float().view(len(mu), samples, 3)
    return {"clouds": clouds, "ellipsoids": [fit_ellipsoid(cloud) for cloud in clouds]}
