"""N6's measures read coverage curves as the chapter says: ties and models stuck at 0 are no
increase, saturated models are left out, growth is a rate; its controls tell."""

import math

import pytest
import torch

from geovae_core.chapters import n6
from geovae_core.profiles import resolve


def test_a_tie_and_a_curve_stuck_at_zero_are_no_increase():
    assert n6.increase_share({"VAE": [0.1, 0.3], "AE with KL": [0.2, 0.5], "AE": [0.4, 0.4]}) == pytest.approx(2 / 3)
    assert n6.increase_share({"VAE": [0.0, 0.0], "AE with KL": [0.2, 0.5], "AE": [0.1, 0.2]}) == pytest.approx(2 / 3)
    assert n6.increase_share({"VAE": [0.1, 0.3], "AE with KL": [0.2, 0.5], "AE": [0.4, 0.9]}) == 1.0


def test_a_saturated_model_is_left_out_and_all_saturated_is_not_measured():
    assert n6.increase_share({"VAE": [0.1, 0.3], "AE with KL": [0.2, 0.5], "AE": [1.0, 1.0]}) == 1.0
    assert math.isnan(n6.increase_share({m: [0.995, 1.0] for m in n6.MODELS}))


def test_growth_is_the_slope_per_epoch_and_the_slower_kl_model_decides():
    assert n6.growth_rate([0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.1)
    assert math.isnan(n6.growth_rate([0.5]))
    curves = {"VAE": [0.0, 0.3, 0.6], "AE with KL": [0.0, 0.1, 0.2], "AE": [0.5, 0.55, 0.6]}
    assert n6.growth_margin(curves) == pytest.approx(0.1 - 0.05)
    # a higher level is not faster growth: the AE covers more but grows more slowly
    assert n6.growth_margin({"VAE": [0.0, 0.1], "AE with KL": [0.0, 0.1], "AE": [0.8, 0.85]}) > 0
    assert math.isnan(n6.growth_margin({**curves, "AE": [1.0, 1.0, 1.0]}))


def test_misreport_is_the_mean_gap_between_fixed_and_adaptive_tau():
    rows = {"VAE": {"coverage": 0.5, "coverage_first_tau": 0.2}, "AE": {"coverage": 0.1, "coverage_first_tau": 0.1}}
    assert n6.misreport(rows) == pytest.approx(0.15)


def test_coverage_rows_hold_tau_at_its_first_value():
    prior = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    rows = n6.coverage_rows(n6.scaled_codes(100, 3, [0.25, 1.0]), prior)
    assert rows[0]["coverage"] == rows[0]["coverage_first_tau"]
    assert rows[1]["tau"] == pytest.approx(4 * rows[0]["tau"], rel=1e-4)
    assert rows[1]["coverage_first_tau"] <= rows[1]["coverage"]


def test_the_controls_tell_on_a_small_latent():
    controls = n6.dataset_controls(size=200, dim=4, epochs=5, d="mnist")
    for claim_id, control in controls.items():
        assert control.tell(n6.CLAIMS[claim_id].criterion), (claim_id, control)


def test_each_dataset_has_its_three_claims_and_its_budget():
    params = resolve("N6", n6.SETTINGS, "smoke")
    runs = n6.experiments(params)
    assert len(runs) == len(n6.NAMES) * len(n6.MODELS) * len(params.seeds)
    assert {hooks.keys().__iter__().__next__() for _, hooks in runs.values()} == {
        f"coverage-{params.coverage_size}-5-95-0"
    }
    assert len(n6.CLAIMS) == 3 * len(n6.NAMES) and set(n6.BUDGETS) == set(n6.NAMES)
    assert runs["celeba", "AE", 0][0].epochs == params.celeba_epochs and runs["mnist", "VAE", 0][0].latent == "sampled"
