"""N6's measures read coverage curves as the chapter says (ties and models stuck at 0 are no increase,
saturated models are left out, growth is a rate), and its controls are real models read by the hook."""

import math
from types import SimpleNamespace

import pytest

from conftest import tiny_config
from geovae_core.cache import run
from geovae_core.chapters import n6
from geovae_core.data import experiment_split
from geovae_core.geometry import coverage_hook
from geovae_core.profiles import resolve
from geovae_core.training import initial_model

SIZE = 100  # the tiny runs' evaluation images and prior samples


def test_the_smallest_rise_counts_a_tie_and_a_curve_stuck_at_zero_as_no_increase():
    assert n6.smallest_rise({"VAE": [0.1, 0.3], "AE with KL": [0.2, 0.5], "AE": [0.4, 0.45]}) == pytest.approx(0.05)
    assert n6.smallest_rise({"VAE": [0.1, 0.3], "AE with KL": [0.2, 0.5], "AE": [0.4, 0.4]}) == 0.0
    assert n6.smallest_rise({"VAE": [0.0, 0.0], "AE with KL": [0.2, 0.5], "AE": [0.1, 0.2]}) == 0.0
    assert n6.smallest_rise({"VAE": [0.3, 0.1], "AE with KL": [0.2, 0.5], "AE": [0.4, 0.9]}) == pytest.approx(-0.2)
    assert not n6.INCREASES.passes(0.0) and n6.INCREASES.passes(0.05)


def test_a_saturated_model_is_left_out_and_all_saturated_is_not_measured():
    assert n6.smallest_rise({"VAE": [0.1, 0.3], "AE with KL": [0.2, 0.5], "AE": [1.0, 0.995]}) == pytest.approx(0.2)
    assert math.isnan(n6.smallest_rise({m: [0.995, 1.0] for m in n6.MODELS}))


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


def tiny_runs(seed: int) -> dict:
    """The chapter's three models, tiny (MNIST MLPs, 2-d latent), with the coverage hook."""
    hooks = coverage_hook(SIZE)
    out = {}
    for name, (latent, terms) in n6.MODELS.items():
        config = tiny_config("mlp", latent=latent, loss_terms=terms, latent_dim=2, epochs=3, seed=seed)
        out[name] = run(config, hooks, progress=False)
    return out


@pytest.fixture(scope="module")
def runs():
    return {s: tiny_runs(s) for s in (0, 1)}


def test_hook_rows_are_what_the_hook_recorded_for_the_same_models(runs):
    ae = runs[0]["AE"]
    first = run(ae.config.replace(epochs=1), coverage_hook(SIZE), progress=False)  # its state after epoch 1
    rows = n6.hook_rows([first.model, ae.model], experiment_split(ae.config), SIZE)
    for key in ("coverage", "tau", "coverage_first_tau"):
        assert rows[-1][key] == pytest.approx(ae.history[-1][key]), key
    assert rows[0]["coverage"] == pytest.approx(ae.history[0]["coverage"])


def test_controls_are_the_claims_measures_on_twins_the_initialised_models_and_frozen_encoders(runs):
    mine, twins = runs[0], runs[1]
    values = n6.dataset_controls(mine, twins, SIZE)
    assert set(values) == set(n6.CONTROL_INPUTS)
    split = experiment_split(mine["AE"].config)
    at_init = {m: n6.hook_rows([initial_model(mine[m].config), mine[m].model], split, SIZE) for m in ("VAE", "AE")}
    grown = [at_init["AE"][0]["coverage"]] + [row["coverage"] for row in mine["AE"].history]
    assert values["coverage-increases"][1] == pytest.approx(grown[-1] - grown[0])
    assert values["tau-matters"][1] == pytest.approx(n6.misreport({"AE": at_init["AE"][-1]}))
    vae = [at_init["VAE"][0]["coverage"]] + [row["coverage"] for row in mine["VAE"].history]
    assert values["kl-grows-faster"][0] == pytest.approx(-n6.growth_rate(vae), abs=1e-12)  # frozen: no growth
    assert values["kl-grows-faster"][1] == pytest.approx(n6.growth_rate(grown), abs=1e-12)
    # a model against itself: no rise and no other τ (the twins' values are the seeds' spread)
    itself = n6.dataset_controls(mine, mine, SIZE)
    assert itself["coverage-increases"][0] == 0.0 and itself["tau-matters"][0] == 0.0
    assert values["tau-matters"][0] != 0.0


def test_each_seed_gets_its_own_controls_with_the_same_inputs(runs, monkeypatch):
    monkeypatch.setattr(n6, "NAMES", {"mnist": "MNIST"})
    by_key = {("mnist", m, s): runs[s][m] for s in runs for m in n6.MODELS}
    measuring = n6.Measuring(SimpleNamespace(seeds=[0, 1], coverage_size=SIZE))
    first, second = measuring.controls(by_key, 0), measuring.controls(by_key, 1)
    assert set(first) == {f"N6-{kind}-mnist" for kind in n6.CONTROL_INPUTS}
    for claim_id, (absent, present) in first.items():
        assert (absent[1], present[1]) == (second[claim_id][0][1], second[claim_id][1][1])
        assert (absent[0], present[0]) != (second[claim_id][0][0], second[claim_id][1][0]), claim_id
    alone = n6.Measuring(SimpleNamespace(seeds=[0], coverage_size=SIZE)).controls(by_key, 0)
    assert all(math.isnan(side[0]) for pair in alone.values() for side in pair)  # no other seed


def test_each_dataset_has_its_three_claims_and_its_budget():
    params = resolve("N6", n6.SETTINGS, "smoke")
    runs = n6.experiments(params)
    assert len(runs) == len(n6.NAMES) * len(n6.MODELS) * len(params.seeds)
    assert {hooks.keys().__iter__().__next__() for _, hooks in runs.values()} == {
        f"coverage-{params.coverage_size}-5-95-0"
    }
    assert len(n6.CLAIMS) == 3 * len(n6.NAMES) and set(n6.BUDGETS) == set(n6.NAMES)
    assert runs["celeba", "AE", 0][0].epochs == params.celeba_epochs and runs["mnist", "VAE", 0][0].latent == "sampled"
