"""N5's new decoder is a warm start of the whole VAE; its controls are real models on the claims' own codes."""

import math
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_config
from geovae_core.cache import run
from geovae_core.chapters import n5
from geovae_core.data import experiment_split
from geovae_core.geometry import decode
from geovae_core.profiles import resolve
from geovae_core.training import initial_model


def test_the_new_decoder_starts_from_the_vae_and_following_it_keeps_the_whole_vae():
    params = resolve("N5", n5.SETTINGS, "smoke")
    new = n5.new_decoder_config(params, 0)
    assert new.init_from == n5.vae_config(params, 0)
    assert (new.latent, new.reinit, new.freeze, new.loss_terms) == (
        "mean",
        ("decoder",),
        ("encoder",),
        (("recon", 1.0),),
    )
    followed = n5.followed_experiments(params)
    assert set(followed) == {("new decoder", s) for s in params.seeds}
    shorter = followed["new decoder", 0].replace(epochs=1)  # what ChapterPage.follow does at an earlier stage
    assert shorter.init_from.epochs == params.epochs and shorter.lineage_key() == new.lineage_key()


class InkQuality:
    """A stand-in for the sample-quality protocol (which needs the trained judge): a set's 'excess'
    is its mean intensity, so that a ratio of excesses says which images were scored."""

    n = 40

    def inputs(self, k):
        return experiment_split(tiny_config("mlp"))[2][:k]

    def score(self, images):
        return {"excess": float(images.mean()), "resolution": 1e-9}


@pytest.fixture(scope="module")
def measured():
    """Tiny VAEs and their new decoders for seeds 0 and 1, measured as the chapter measures them."""
    params = SimpleNamespace(seeds=[0, 1], n_paths=3)
    runs = {}
    for s in params.seeds:
        vae = tiny_config("mlp", seed=s)
        runs["VAE", s] = run(vae, progress=False)
        new = vae.replace(
            latent="mean", loss_terms=(("recon", 1.0),), init_from=vae, reinit=("decoder",), freeze=("encoder",)
        )
        runs["new decoder", s] = run(new, progress=False)
    measuring = n5.Measuring(params, InkQuality(), {s: runs["VAE", s] for s in params.seeds})
    for s in params.seeds:
        measuring.codes[s] = measuring.draw(s)
        vae = runs["VAE", s].model
        measuring.original[s] = {p: measuring.quality.score(decode(vae, z)) for p, z in measuring.codes[s].items()}
    measuring(runs, final=True)
    return measuring, runs


def test_far_worse_controls_are_a_second_draw_the_next_seeds_vae_and_the_decoder_at_initialisation(measured):
    measuring, runs = measured
    ink = lambda model, z: float(decode(model, z).mean())  # noqa: E731
    for seed, other in ((0, 1), (1, 0)):
        controls = measuring.controls(runs, seed)
        codes, vae = measuring.codes[seed], runs["VAE", seed]
        (a_absent, _), (a_present, _) = controls["N5-a-samples-around-mu"]
        (c_absent, _), (c_present, _) = controls["N5-c-prior-samples"]
        # the VAE on a second draw around the same μ: another draw, not the first one again
        again = measuring.draw(seed, stream=2000)
        assert torch.equal(again["mu"], codes["mu"]) and not torch.equal(again["a"], codes["a"])
        assert a_absent == pytest.approx(ink(vae.model, again["a"]) / ink(vae.model, codes["a"]))
        untrained = initial_model(vae.config)
        assert a_present == pytest.approx(ink(untrained, codes["a"]) / ink(vae.model, codes["a"]))
        assert c_present == pytest.approx(ink(untrained, codes["c"]) / ink(vae.model, codes["c"]))
        # the next seed's VAE decodes THIS seed's prior draws: the two seeds' values are no reciprocals
        assert c_absent == pytest.approx(ink(runs["VAE", other].model, codes["c"]) / ink(vae.model, codes["c"]))


def test_smoothness_controls_jump_with_the_nearest_image_decoder_and_are_even_at_initialisation(measured):
    measuring, runs = measured
    for seed in (0, 1):
        (absent, _), (present, _) = measuring.controls(runs, seed)["N5-b-perturbations-smooth"]
        assert not n5.SMOOTH_PATHS.passes(absent) and n5.SMOOTH_PATHS.passes(present), (absent, present)
        # the nearest-image decoder returns training images only
        nearest = measuring.nearest(seed)
        out = decode(nearest, measuring.codes[seed]["mu"][:5])
        pool = experiment_split(runs["VAE", seed].config)[0]
        assert all(any(torch.equal(image, p) for p in pool) for image in out)


def test_every_claim_has_controls_whose_inputs_read_the_same_and_whose_values_differ_by_seed(measured):
    measuring, runs = measured
    first, second = measuring.controls(runs, 0), measuring.controls(runs, 1)
    assert set(first) == set(second) == set(n5.CLAIMS)
    for claim_id in n5.CLAIMS:
        for side in (0, 1):
            assert first[claim_id][side][1] == second[claim_id][side][1]
            assert first[claim_id][side][0] != second[claim_id][side][0], (claim_id, side)
    alone = n5.Measuring(SimpleNamespace(seeds=[0], n_paths=3), measuring.quality, {0: runs["VAE", 0]})
    alone.codes, alone.original, alone.details = measuring.codes, measuring.original, measuring.details
    assert math.isnan(alone.controls(runs, 0)["N5-c-prior-samples"][0][0])  # no other seed to compare


def test_trend_crossings_interpolate_a_recent_crossing_and_carry_a_rising_trend():
    trajectory = {
        0: [(5, 1.2), (10, 1.5), (20, 1.9)],  # fails, rising 0.4 per doubling: passes 2 at 20 * 2**0.25
        1: [(5, 1.5), (10, 1.8), (20, 2.2)],  # crossed between 10 and 20: at 10 * 2**0.5
        2: [(5, 3.0), (10, 3.1), (20, 3.2)],  # passed all along
        3: [(5, 1.9), (10, 1.7), (20, 1.5)],  # falling away: never
    }
    crossings = n5.trend_crossings(trajectory, n5.FAR_WORSE)
    assert set(crossings) == {0, 1}
    assert crossings[0] == pytest.approx(20 * 2**0.25) and crossings[1] == pytest.approx(10 * 2**0.5)
