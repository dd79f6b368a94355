"""N9's protocols (P's centres-then-relaxed and our data-initialised variant), its tie-aware
measures, and the one-code moves its controls make."""

import torch

from geovae_core.chapters import n9
from geovae_core.codebook import distinct_codes
from geovae_core.profiles import resolve

GRID = torch.stack(torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij"), -1).view(-1, 2)


def test_p_s_protocol_relaxes_the_centres_and_the_variant_trains_as_long_from_data():
    params = resolve("N9", n9.SETTINGS, "quick")
    p = n9.codebook_config(params, "P", "fashion_mnist", "gradient", 20, 0)
    data = n9.codebook_config(params, "data", "fashion_mnist", "gradient", 20, 0)
    assert p.init_from.latent == "centres" and p.init_from.pool_size == params.pool_size
    assert p.init_from.epochs == params.codebook_epochs and p.epochs == params.epochs
    assert p.latent == "codebook" and p.pool_size == 0 and p.codebook_decay is None
    assert data.init_from is None and data.epochs == params.codebook_epochs + params.epochs
    assert p.replace(init_from=None, epochs=data.epochs) == data  # the same run but for the start
    residual = n9.codebook_config(params, "P", "fashion_mnist", "residual", 500, 0)
    assert residual.model == "resmlp" and residual.codebook_decay == params.codebook_decay
    assert set(n9.experiments(params, "data")) == {("data", *w, params.seeds[0]) for w in n9.runs_of(params)}


def test_one_code_merged_or_moved_out_changes_the_distinct_count_by_one_unless_saturated():
    codes = torch.tensor([[0.0, 0.0], [0.0, 0.5], [5.0, 5.0], [9.0, 0.0]])  # 3 distinct of 4
    assert distinct_codes(n9.merged(codes, GRID), GRID) == 2
    assert distinct_codes(n9.separated(codes, GRID), GRID) == 4
    healthy = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]])
    assert torch.equal(n9.separated(healthy, GRID), healthy)  # no collapse to undo: no room to move
    assert torch.equal(n9.merged(torch.zeros(3, 2), GRID), torch.zeros(3, 2))  # one code left: nothing to merge


def test_ties_are_no_difference_whatever_the_level():
    params = resolve("N9", n9.SETTINGS, "smoke")
    whats = n9.runs_of(params)
    stats = {("P", *w, s): {"distinct": 20, "usage": 1.0} for w in whats for s in params.seeds}
    measures = n9.Measuring(params, {}, {}).measures(stats)
    values = {claim: measures[claim][params.seeds[0]] for claim in n9.CLAIMS}
    assert values["N9-fashion-collapses-more"] == 0 and not n9.FEWER_DISTINCT.passes(0)
    assert values["N9-ema-reduces-collapse"] == 0 and not n9.MORE_DISTINCT.passes(0)
    assert values["N9-residual-attracts-a-larger-share"] == 0 and not n9.LARGER_SHARE.passes(0)
    assert not n9.FEW.passes(values["N9-few-codes-attract"])
    assert n9.FEWER_DISTINCT.passes(-1) and n9.MORE_DISTINCT.passes(1) and n9.LARGER_SHARE.passes(1 / 500)
