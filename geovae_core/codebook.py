"""A codebook of K vectors (P §3.2-3.5, VQ-VAE): nearest-code assignment, the pull loss
lambda ||mu - c_k*||^2, EMA updates, and codebook usage and perplexity; and R §3.1's
learnable cluster centres, which match the other way round (each centre to its nearest
encoding in a pool).

Codes are matched to one vector per image [B, D], or to every position of a feature map
[B, C, H, W] with the channels as the vector (the VQ-VAE convention).
"""

from __future__ import annotations

import torch
from torch import nn

from .geometry import distances


def as_vectors(x: torch.Tensor) -> torch.Tensor:
    """[B, D] stays; a feature map [B, C, H, W] becomes its B*H*W channel vectors [N, C]."""
    return x if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def nearest_codes(vectors: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """k* = argmin_k ||v - c_k||^2 for every vector [N, D] against codes [K, D] (P §3.2), from
    ||v||^2 - 2 v.c + ||c||^2 in one matrix product, after centring both on the codes' mean
    (so codes far from the origin keep their precision)."""
    centre = codes.mean(dim=0)
    v, c = vectors - centre, codes - centre
    distances = v.pow(2).sum(1, keepdim=True) - 2 * v @ c.T + c.pow(2).sum(1)
    return distances.argmin(dim=1)


def usage(indices: torch.Tensor, size: int) -> float:
    """The share of the ``size`` codes that at least one vector was assigned to."""
    return float(torch.bincount(indices.flatten(), minlength=size).gt(0).float().mean())


def perplexity(indices: torch.Tensor, size: int) -> float:
    """exp(entropy) of the code assignment frequencies: 1 when one code takes everything,
    ``size`` when all are used equally."""
    p = torch.bincount(indices.flatten(), minlength=size).float()
    p = p / p.sum()
    return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))


def distinct_mask(codes: torch.Tensor, encodings: torch.Tensor, sample: int = 2000) -> torch.Tensor:
    """Per code [K], whether it is kept as distinct: it is not nearer to an earlier code than the
    median nearest-neighbour distance among ``encodings`` (vectors [N, D], the first ``sample``;
    ``criteria.DISTINCT_CODE``). The first code is always kept."""
    vectors = as_vectors(encodings)[:sample]
    between = distances(vectors, vectors)
    between.fill_diagonal_(float("inf"))
    tolerance = between.min(dim=1).values.median()
    close = distances(codes, codes) < tolerance
    return ~torch.triu(close, diagonal=1).any(dim=0)


def distinct_codes(codes: torch.Tensor, encodings: torch.Tensor, sample: int = 2000) -> int:
    """How many codes remain when every code nearer to an earlier code than the median
    nearest-neighbour distance among ``encodings`` is dropped (``distinct_mask``): K for a
    healthy codebook, 1 when all codes collapsed."""
    return int(distinct_mask(codes, encodings, sample).sum())


@torch.no_grad()
def code_statistics(model, images: torch.Tensor) -> dict:
    """How a trained codebook is used on ``images``: ``attracting`` codes (assigned at least one
    encoding), ``usage`` (their share of K), ``perplexity``, ``distinct`` codes and their share."""
    out = model(images)
    size = model.codebook.size
    distinct = distinct_codes(model.codebook.codes, out["mu"])
    return {
        "codes": size,
        "attracting": int(torch.bincount(out["indices"].flatten(), minlength=size).gt(0).sum()),
        "usage": usage(out["indices"], size),
        "perplexity": perplexity(out["indices"], size),
        "distinct": distinct,
        "distinct share": distinct / size,
    }


class Codebook(nn.Module):
    """K code vectors. With ``decay`` None the codes are parameters, moved by the gradient of
    the pull loss (P §3.2). Otherwise every code assigned at least one vector of a batch moves
    toward their mean m_k, e_k <- e_k + alpha (m_k - e_k) with alpha = 1 - decay (P App. A.4.1's
    EMA rule), and a code assigned nothing stays where it is. The codes start at K distinct
    vectors of the data (``initialise``, which the training loop calls before its first step)."""

    def __init__(self, size: int, dim: int, decay: float | None = None):
        super().__init__()
        self.size, self.decay = size, decay
        codes = torch.zeros(size, dim)
        if decay is None:
            self.codes = nn.Parameter(codes)
        else:
            self.register_buffer("codes", codes)
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def initialise(self, vectors: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Set the codes to K distinct rows of ``vectors`` [N, D], chosen at random."""
        unique = torch.unique(vectors.detach(), dim=0)
        if len(unique) < self.size:
            raise ValueError(f"a codebook of {self.size} codes needs {self.size} distinct vectors, got {len(unique)}")
        chosen = torch.randperm(len(unique), generator=generator)[: self.size].to(unique.device)
        self.codes.data.copy_(unique[chosen])
        self.initialised.fill_(True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A ``ClusterCentres``' state loads as a codebook started at the centres: P App. A.4.1's
        protocol trains R §3.1's centres first, then relaxes that constraint into the
        nearest-code pull (a warm start, ``init_from``, from the centres' run). The centres'
        ``initial`` state is dropped and the codes count as initialised."""
        if prefix + "initial" in state_dict and prefix + "initialised" not in state_dict:
            del state_dict[prefix + "initial"]
            state_dict[prefix + "initialised"] = torch.tensor(True)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def _ema_update(self, vectors: torch.Tensor, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices, minlength=self.size)
        sums = torch.zeros_like(self.codes).index_add_(0, indices, vectors)
        assigned = counts > 0
        means = sums[assigned] / counts[assigned].unsqueeze(1).to(vectors.dtype)
        self.codes[assigned] += (1 - self.decay) * (means - self.codes[assigned])

    def forward(self, mu: torch.Tensor) -> dict:
        """``indices`` (shape [B] or [B, H, W]), ``quantized`` (the codes, shaped like mu) and
        ``pull``, ||mu - c_k*||^2 per image (summed over the positions of a map)."""
        if self.training and not bool(self.initialised):
            raise RuntimeError(
                "the codebook is used in training before initialise(): the training loop sets it from the data"
            )
        vectors = as_vectors(mu)
        indices = nearest_codes(vectors.detach(), self.codes.detach())
        chosen = self.codes[indices]
        pull = (vectors - chosen).pow(2).sum(1).view(mu.shape[0], -1).sum(1)
        if self.training and self.decay is not None:
            self._ema_update(vectors.detach(), indices)
        if mu.dim() == 2:
            return {"indices": indices, "quantized": chosen, "pull": pull}
        b, c, h, w = mu.shape
        return {
            "indices": indices.view(b, h, w),
            "pull": pull,
            "quantized": chosen.view(b, h, w, c).permute(0, 3, 1, 2),
        }


class ClusterCentres(nn.Module):
    """R §3.1's learnable cluster centres v_1..v_K (R uses K = 1). Each centre picks, from a
    matching pool of encodings, the one nearest to it, x*_k = argmin_j ||E(x_j) - v_k||^2, and
    is pulled together with it: L_pull = ||E(x*_k) - v_k||^2, whose gradient reaches v_k and
    the encoder (R §3.1, eq. encoder_pull). The centres start N(0, I), "initially meaningless";
    ``initial`` records them as they were at the first training step (R Fig 3.3's first step)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.codes = nn.Parameter(torch.randn(size, dim))
        self.register_buffer("initial", torch.full((size, dim), float("nan")))

    def forward(self, pool_codes: torch.Tensor) -> dict:
        """``centre_indices`` [K], the pool position each centre matched, and ``centre_pull``
        [K], ||E(x*_k) - v_k||^2."""
        if self.training and bool(self.initial.isnan().any()):
            self.initial.copy_(self.codes.detach())
        indices = nearest_codes(self.codes.detach(), pool_codes.detach())
        return {"centre_indices": indices, "centre_pull": (pool_codes[indices] - self.codes).pow(2).sum(1)}


def centre_step_hook() -> dict:
    """A per-epoch hook (see ``training.run``) recording R Fig 3.3's measure: ``centre_step``,
    the mean over centres of the Euclidean distance of v_k from its state one epoch earlier
    (after the first epoch: from its initial state)."""
    previous = {}

    def hook(model, split):
        now = model.codebook.codes.detach().clone()
        before = previous.get("codes", model.codebook.initial)
        previous["codes"] = now
        return {"centre_step": float((now - before).norm(dim=1).mean())}

    def resume(model, history):  # a resumed run steps from the centres it kept
        previous["codes"] = model.codebook.codes.detach().clone()

    hook.resume = resume
    return {"centre_step": hook}


DRIFT_IMAGES = 1000  # the test images whose mean encoding is a baseline of a centre's step


def drift_hook() -> dict:
    """A per-epoch hook recording two baselines of a centre's step (R Fig 3.3), as lists (a step
    is the distance between two epochs' lists): ``mean_encoding``, the mean encoding of the first
    ``DRIFT_IMAGES`` test images, and ``encoder_bias``, the bias of the encoder's output layer.
    It lives here, beside ``centre_step_hook``, so that its runs' code version (the import closure
    of the hooks' modules) is that of every run, not that of a chapter's page code."""

    def hook(model, split):
        bias = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)][-1].bias
        codes = model.encode(split[2][:DRIFT_IMAGES])[0]
        return {"mean_encoding": codes.mean(0).tolist(), "encoder_bias": bias.tolist()}

    return {"drift": hook}
