"""Latent geometry: P's CV of nearest-neighbour distances (§2.1) and Dynamic Latent Coverage
(§3.1, Algorithm 1), latent paths (perturbations, interpolations) and how even they are.

All vectorised over points: no Python loop over codes.
"""
from __future__ import annotations

import torch


def nearest_neighbour_sq_distances(z: torch.Tensor) -> torch.Tensor:
    """d_i = min_{j != i} ||z_i - z_j||^2 for codes z [..., N, D] (batched over leading dims)."""
    d = torch.cdist(z, z).pow(2)
    d.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
    return d.min(dim=-1).values


def cv_nnd(z: torch.Tensor) -> torch.Tensor:
    """CV = s / mean of the squared nearest-neighbour distances within one batch of codes
    (P §2.1; s is the sample standard deviation). Batched over leading dims."""
    d = nearest_neighbour_sq_distances(z)
    return d.std(dim=-1) / d.mean(dim=-1)


@torch.no_grad()
def latent_cv_nnd(model, x: torch.Tensor, batches: int = 16, batch_size: int = 128,
                  draws: int = 1000, seed: int = 0) -> dict:
    """P Fig 2b's measurement on test images x: the CV-NND of each of ``batches`` batches of
    ``batch_size`` codes, averaged. ``cv_nnd`` uses the codes the decoder receives: for a
    ``sampled`` latent, ``draws`` reparameterised draws z = mu + sigma * eps of each batch
    (our reading of "each batch sampled 1,000 times"), averaged; otherwise mu. ``cv_nnd_mu``
    uses mu for every model."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    on_mu, on_codes = [], []
    for b in range(batches):
        xb = x[b * batch_size:(b + 1) * batch_size]
        if len(xb) < 2:
            break
        mu, logvar = model.encode(xb)
        on_mu.append(cv_nnd(mu))
        if model.latent == "sampled":
            eps = torch.randn(draws, *mu.shape, generator=generator, device=mu.device)
            on_codes.append(cv_nnd(mu + torch.exp(0.5 * logvar) * eps).mean())
        else:
            on_codes.append(on_mu[-1])
    return {"cv_nnd": float(torch.stack(on_codes).mean()), "cv_nnd_mu": float(torch.stack(on_mu).mean())}


def cv_nnd_hook(batches: int = 16, batch_size: int = 128, draws: int = 1000) -> dict:
    """A per-epoch hook (see ``training.run``) recording ``latent_cv_nnd`` on the test set."""
    def hook(model, split):
        return latent_cv_nnd(model, split[2], batches, batch_size, draws)
    return {f"cv_nnd-{batches}x{batch_size}x{draws}": hook}


def dynamic_latent_coverage(mu: torch.Tensor, prior: torch.Tensor, k_nn: int = 5,
                            eta: float = 95.0) -> tuple:
    """P Algorithm 1: tau is the eta-th percentile of the distances from each mu_i to its
    2nd..k_nn-th nearest other code (the closest is skipped); coverage is the share of prior
    samples whose nearest mu is closer than tau. Returns (coverage, tau)."""
    d = torch.cdist(mu, mu)
    d.fill_diagonal_(float("inf"))
    neighbours = d.topk(k_nn, dim=1, largest=False).values[:, 1:]
    tau = torch.quantile(neighbours.flatten(), eta / 100.0)
    nearest = torch.cdist(prior, mu).min(dim=1).values
    return float((nearest < tau).float().mean()), float(tau)


def coverage_hook(size: int = 1000, k_nn: int = 5, eta: float = 95.0, seed: int = 0) -> dict:
    """A per-epoch hook recording Dynamic Latent Coverage and tau: the first ``size`` test
    images are the fixed evaluation set (M) and ``size`` fixed prior samples are N."""
    def hook(model, split):
        mu = model.encode(split[2][:size])[0]
        generator = torch.Generator().manual_seed(seed)
        prior = torch.randn(size, mu.shape[1], generator=generator).to(mu.device)
        coverage, tau = dynamic_latent_coverage(mu, prior, k_nn, eta)
        return {"coverage": coverage, "tau": tau}
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


def step_sizes(frames: torch.Tensor) -> torch.Tensor:
    """RMS pixel change between consecutive frames of a path [T, ...] -> [T - 1]."""
    flat = frames.flatten(1)
    return (flat[1:] - flat[:-1]).pow(2).mean(dim=1).sqrt()


def step_unevenness(frames: torch.Tensor) -> float:
    """Largest step over mean step along a path: 1 for a perfectly even path, large when
    the images jump (a measure of smoothness for perturbation and interpolation paths)."""
    steps = step_sizes(frames)
    return float(steps.max() / steps.mean().clamp_min(1e-12))


def nearest_image_distance(images: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """RMS pixel distance from each image [N, ...] to its nearest image in ``pool`` [M, ...]:
    how far an interpolation's midpoint lies from real data (P Fig 11)."""
    return torch.cdist(images.flatten(1), pool.flatten(1)).min(dim=1).values / images[0].numel() ** 0.5


def fit_ellipsoid(points: torch.Tensor, scale: float = 2.0) -> tuple:
    """An ellipsoid fitted to a point cloud [N, D]: (centre [D], radii [D], axes [D, D] as
    columns), the radii ``scale`` standard deviations along the covariance's principal axes."""
    centre = points.mean(dim=0)
    covariance = torch.cov(points.T)
    variances, axes = torch.linalg.eigh(covariance)
    return centre, scale * variances.clamp_min(0).sqrt(), axes


def sample_map_fit(mu: torch.Tensor, logvar: torch.Tensor, samples: int, seed: int = 0,
                   n_neighbors: int = 200, min_dist: float = 0.99) -> dict:
    """P Fig 2a's sample-map-fit: draw ``samples`` points from each encoded Gaussian
    N(mu_i, sigma_i^2), map all of them to 3-D with one UMAP, and fit an ellipsoid to each
    Gaussian's projected cloud. Returns the clouds [n, samples, 3] and the ellipsoids.
    UMAP's neighbourhoods are wider than one ball's cloud (``n_neighbors`` > ``samples``), so
    the map keeps the balls' relative placement, and ``min_dist`` keeps each cloud spread out."""
    import umap

    generator = torch.Generator().manual_seed(seed)
    mu, std = mu.cpu(), torch.exp(0.5 * logvar.cpu())
    points = mu[:, None] + std[:, None] * torch.randn(len(mu), samples, mu.shape[1], generator=generator)
    mapper = umap.UMAP(n_components=3, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1)
    embedding = mapper.fit_transform(points.flatten(0, 1).numpy())
    clouds = torch.from_numpy(embedding).float().view(len(mu), samples, 3)
    return {"clouds": clouds, "ellipsoids": [fit_ellipsoid(cloud) for cloud in clouds]}
