"""N9's protocols (P's centres-then-relaxed and our data-initialised variant), its measures (the
counts of distinct and attracting codes read through gaps and margins, which pass exactly when
the counts do) and its controls, on real models at their initialisation."""

from types import SimpleNamespace

import pytest
import torch

from geovae_core.chapters import n9, n9_codes
from geovae_core.codebook import distinct_codes, distinct_mask, nearest_codes, usage
from geovae_core.data import experiment_split
from geovae_core.profiles import resolve
from geovae_core.training import initial_model


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


def _book(seed: int, size: int, spread: float) -> tuple:
    """(codes, encodings): ``size`` codes around 300 encodings in 3 dimensions, ``spread`` times
    as wide as the encodings (narrow codes crowd together, wide ones leave most codes idle)."""
    generator = torch.Generator().manual_seed(seed)
    encodings = torch.randn(300, 3, generator=generator)
    return spread * torch.randn(size, 3, generator=generator), encodings


BOOKS = [_book(seed, size, spread) for seed in range(6) for size in (8, 20) for spread in (0.05, 0.3, 1.0, 6.0)]


def test_a_gap_of_at_least_one_is_a_distinct_code_and_a_positive_margin_an_idle_one():
    for codes, encodings in BOOKS:
        gaps = n9_codes.gaps(codes, encodings)
        assert torch.equal(gaps >= 1, distinct_mask(codes, encodings)) and gaps[0] == float("inf")
        idle = torch.bincount(nearest_codes(encodings, codes), minlength=len(codes)) == 0
        assert torch.equal(n9_codes.margins(codes, encodings) > 0, idle)
    assert {bool((n9_codes.gaps(*b) < 1).any()) for b in BOOKS} == {True, False}  # crowded and healthy books
    assert {bool((n9_codes.margins(*b) > 0).any()) for b in BOOKS} == {True, False}  # idle codes and none


def test_the_measures_pass_exactly_when_the_counts_they_stand_for_do():
    distinct = lambda book: distinct_codes(*book)  # noqa: E731
    used = lambda book: usage(nearest_codes(book[1], book[0]), len(book[0]))  # noqa: E731
    outcomes = set()
    for a in BOOKS:
        assert n9_codes.FEW_ATTRACT.passes(n9_codes.few_attracting(a)) == (used(a) <= 0.5)
        for b in BOOKS:
            if len(a[0]) == len(b[0]):
                fewer = distinct(a) < distinct(b)
                assert n9_codes.FEWER_DISTINCT.passes(n9_codes.fewer_distinct(a, b)) == fewer
                assert n9_codes.MORE_DISTINCT.passes(n9_codes.fewer_distinct(a, b)) == fewer
                outcomes.add(fewer)
            larger = used(b) > used(a)
            assert n9_codes.LARGER_SHARE.passes(n9_codes.larger_share(a, b)) == larger
            outcomes.add(("share", larger))
    assert outcomes == {True, False, ("share", True), ("share", False)}
    healthy = BOOKS[3]  # wide codes: all distinct
    assert not n9_codes.FEWER_DISTINCT.passes(n9_codes.fewer_distinct(healthy, healthy))  # a tie is no difference


def test_collapsed_codes_sit_on_the_class_centres_and_move_with_the_draw():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(1000) % 10
    encodings = 10 * torch.randn(10, 4, generator=generator)[labels] + torch.randn(1000, 4, generator=generator)
    codes = n9_codes.collapsed(encodings, labels, 20, torch.Generator().manual_seed(1))
    assert distinct_codes(codes, encodings) == 10 and distinct_codes(encodings[:20], encodings) == 20
    assert n9_codes.FEWER_DISTINCT.passes(n9_codes.fewer_distinct((codes, encodings), (encodings[:20], encodings)))
    again = n9_codes.collapsed(encodings, labels, 20, torch.Generator().manual_seed(2))
    assert not torch.equal(codes, again) and torch.allclose(codes, again, atol=0.5)


@pytest.fixture(scope="module")
def at_start():
    """N9's smoke runs as models at their initialisation, codebooks started as training starts
    them, and the chapter's measuring."""
    params = resolve("N9", n9.SETTINGS, "smoke")
    runs = {}
    for key, config in n9.experiments(params).items():
        model = initial_model(config)
        with torch.no_grad():
            model.initialise_codebook(experiment_split(config)[0], torch.Generator().manual_seed(config.seed))
        runs[key] = SimpleNamespace(model=model, config=config)
    return params, runs, n9.Measuring.of(params)


def test_every_claim_has_real_controls_per_seed_that_differ_between_seeds(at_start):
    params, runs, measuring = at_start
    each = {s: measuring.controls(runs, s) for s in params.seeds}
    first, second = (each[s] for s in params.seeds)
    assert set(first) == set(n9.CLAIMS)
    for claim in n9.CLAIMS:
        for side in (0, 1):
            assert first[claim][side][1] == second[claim][side][1]  # the same input, described without the seed
            assert first[claim][side][0] != second[claim][side][0]  # computed from each seed's models or draw
    for controls in each.values():
        # codes collapsed onto class centres are fewer distinct codes; codes at drawn training encodings
        # attract data; P's N(0, I) centres at the start mostly attract none
        assert n9.FEWER_DISTINCT.passes(controls["N9-fashion-collapses-more"][1][0])
        assert n9.MORE_DISTINCT.passes(controls["N9-ema-reduces-collapse"][1][0])
        assert not n9.FEW_ATTRACT.passes(controls["N9-few-codes-attract"][0][0])
        assert n9.FEW_ATTRACT.passes(controls["N9-few-codes-attract"][1][0])
        assert n9.LARGER_SHARE.passes(controls["N9-residual-attracts-a-larger-share"][1][0])


def test_the_claims_read_the_measures_of_p_s_runs(at_start):
    params, runs, measuring = at_start
    out = measuring.measures(runs, final=True)
    books = {key: measuring.book(r.model, key[1]) for key, r in runs.items()}
    small, s = min(params.codebook_sizes), params.seeds[1]
    gradient, mnist = books["P", "fashion_mnist", "gradient", small, s], books["P", "mnist", "gradient", small, s]
    assert out["N9-fashion-collapses-more"][s] == n9_codes.fewer_distinct(gradient, mnist)
    assert set(measuring.details["P"]["stats"]) == {k for k in runs if k[0] == "P"}
