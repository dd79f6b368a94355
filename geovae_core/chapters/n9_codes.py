"""N9's measures of a codebook and their criteria (P App. A.4; R §3.4, §4.1–4.2): the counts its
claims read (distinct codes, codes attracting data) through continuous equivalents that pass
exactly when the counts do, and the collapsed codebook of its controls (the chapter's settings,
runs and claims are in ``n9``).

A code's *gap* is its distance to the nearest earlier code and its *margin* how far it falls
short of attracting a test encoding, both in median nearest-neighbour distances among the test
encodings (``criteria.DISTINCT_CODE``'s unit). Read at the rank where a count would change, they
move with the codes where the count jumps by one.
"""

from __future__ import annotations

import math

import torch

from ..codebook import nearest_codes
from ..criteria import Criterion
from ..geometry import distances

GAP = "distance to the nearest earlier code / median nearest-neighbour distance among test encodings"
FEWER_DISTINCT = Criterion(
    "fewer distinct codes",
    f"gap of FashionMNIST's (K − n + 1)-th most crowded code, n = MNIST's distinct codes (gradient updates, the "
    f"same K; gap: {GAP})",
    "<",
    1.0,
    "P: 'FashionMNIST is more prone to collapse, whereas MNIST is difficult to collapse': at least one distinct "
    "code fewer. A code is distinct when its gap is at least 1 (DISTINCT_CODE), so FashionMNIST keeps fewer than "
    "MNIST's n exactly when its (K − n + 1)-th smallest gap is below 1: the measure passes when the count does and "
    "moves with the codes where the count jumps. A tie, both at K included (neither collapsed), fails.",
)
MORE_DISTINCT = Criterion(
    "more distinct codes",
    f"gap of the gradient codebook's (K − n + 1)-th most crowded code, n = the EMA codebook's distinct codes "
    f"(FashionMNIST, the same K; gap: {GAP})",
    "<",
    1.0,
    "P: EMA helps 'to prevent them from collapsing into the same solution': the EMA codebook keeps at least one "
    "distinct code more, that is, the gradient one keeps fewer than the EMA one's n, exactly when its (K − n + 1)-th "
    "smallest gap is below 1 (a continuous equivalent of the count). When the gradient codebook kept all K codes "
    "there is no collapse to prevent.",
)
MARGIN = (
    "margin: over the test encodings, the least of its distance to one minus that one's distance to its own nearest "
    "other code, in median nearest-neighbour distances among test encodings; above 0 when it attracts none"
)
FEW_ATTRACT = Criterion(
    "few attract",
    f"margin of the small model's ⌈K/2⌉-th most idle code ({MARGIN})",
    ">",
    0.0,
    "P: 'only a small number were properly utilized': at most half of the codes attract a test encoding (usage ≤ "
    "0.5), which holds exactly when at least ⌈K/2⌉ margins are above 0: the measure passes when the usage does and "
    "moves with the codes where the usage jumps by 1/K.",
)
LARGER_SHARE = Criterion(
    "a larger share",
    "margin of the small model's (K − ⌈a·K/K′⌉ + 1)-th most idle code, a being the codes of the residual model's K′ "
    "that attract a test encoding (EMA, FashionMNIST)",
    ">",
    0.0,
    "P: 'visibly more of them were correctly attracted': a larger share, since the codebooks differ in size (500 "
    "and 50). The small model's share is below a/K′ exactly when at least K − ⌈a·K/K′⌉ + 1 of its codes attract "
    "nothing, i.e. when its margin at that rank is above 0: the measure moves with the codes where the share jumps. "
    "A tie, both at 100% included, fails.",
)


def tolerance(encodings: torch.Tensor, sample: int = 2000) -> torch.Tensor:
    """``criteria.DISTINCT_CODE``'s unit: the median nearest-neighbour distance among the first
    ``sample`` encodings (as ``codebook.distinct_mask`` reads it)."""
    vectors = encodings[:sample]
    between = distances(vectors, vectors)
    between.fill_diagonal_(float("inf"))
    return between.min(dim=1).values.median()


def gaps(codes: torch.Tensor, encodings: torch.Tensor) -> torch.Tensor:
    """Per code, its distance to the nearest earlier code in ``tolerance`` units (inf for the
    first): a code is distinct (``codebook.distinct_mask``) exactly when its gap is at least 1."""
    between = distances(codes, codes).tril(-1)
    earlier = torch.ones_like(between, dtype=torch.bool).tril(-1)
    return between.masked_fill(~earlier, float("inf")).min(dim=1).values / tolerance(encodings)


def margins(codes: torch.Tensor, encodings: torch.Tensor) -> torch.Tensor:
    """Per code, how far it falls short of attracting an encoding, in ``tolerance`` units: the
    least, over the encodings, of its distance to one minus that one's distance to its nearest
    other code. At most 0 when some encoding chooses it, above 0 when none does (P Fig 15b)."""
    between = distances(encodings, codes)
    two = between.topk(2, dim=1, largest=False)
    others = two.values[:, :1].expand_as(between).clone()
    others.scatter_(1, two.indices[:, :1], two.values[:, 1:])  # its own code's: the second nearest
    return (between - others).min(dim=0).values / tolerance(encodings)


def fewer_distinct(collapsing: tuple, other: tuple) -> float:
    """``FEWER_DISTINCT``'s and ``MORE_DISTINCT``'s measure of two codebooks (codes, test
    encodings) of the same K: the (K − n + 1)-th smallest ``gaps`` of ``collapsing``, n being
    ``other``'s distinct codes; below 1 exactly when ``collapsing`` keeps fewer distinct codes."""
    mine, n = gaps(*collapsing), int((gaps(*other) >= 1).sum())
    return float(mine.sort().values[len(mine) - n])


def few_attracting(book: tuple) -> float:
    """``FEW_ATTRACT``'s measure: the ⌈K/2⌉-th largest ``margins`` of a codebook (codes, test
    encodings); above 0 exactly when at most half of the codes attract an encoding."""
    idle = margins(*book).sort(descending=True).values
    return float(idle[math.ceil(len(idle) / 2) - 1])


def larger_share(small: tuple, larger: tuple) -> float:
    """``LARGER_SHARE``'s measure: the small codebook's (K − ⌈a·K/K′⌉ + 1)-th largest ``margins``,
    a being the codes of ``larger`` (K′ of them) that attract an encoding; above 0 exactly when
    the small codebook's share of attracting codes is below ``larger``'s."""
    idle, (codes, encodings) = margins(*small).sort(descending=True).values, larger
    attracting = len(torch.unique(nearest_codes(encodings, codes)))
    return float(idle[len(idle) + (-attracting * len(idle) // len(codes))])  # rank K − ⌈a·K/K′⌉ + 1


def collapsed(encodings: torch.Tensor, labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` codes collapsed onto the class centres (P: 'some of these vectors eventually
    converged to the same location'): each class's encodings split at random into groups, one
    code at each group's mean, two or more codes per centre. Means of random groups of one class
    lie close together (their spread shrinks with the group's size): a known collapse."""
    centres = max(1, min(int(labels.max()) + 1, size // 2))
    order = torch.randperm(len(labels), generator=generator)
    codes = torch.empty(size, encodings.shape[1], dtype=encodings.dtype, device=encodings.device)
    for c in range(centres):
        chosen = list(range(c, size, centres))
        for k, group in zip(chosen, order[labels[order] == c].tensor_split(len(chosen))):
            codes[k] = encodings[group.to(encodings.device)].mean(0)
    return codes
