"""N2's measures, on untrained tiny models, synthetic digits and a judge whose readings are known:
the digit-like score and its ink rule, the contrast the morph claim reads, the swap control, and
that one measurement gives every claim a value, a control pair and a claim."""

import math
from types import SimpleNamespace

import pytest
import torch

from geovae_core.chapters import n2
from geovae_core.config import ExperimentConfig
from geovae_core.models import build_model
from geovae_core.notebook import Followed
from geovae_core.profiles import resolve


class Judge:
    """Reads an image as the class its first pixel encodes (pixel × 10), with probability 0.95."""

    def probabilities(self, images):
        cls = (images.flatten(1)[:, 0] * 10).round().long().clamp(0, 9)
        out = torch.full((len(images), 10), 0.05 / 9)
        out[torch.arange(len(images)), cls] = 0.95
        return out

    def readable(self, images):
        return self.probabilities(images).max(1).values >= 0.9


def _digits(n=200):
    labels = torch.arange(n) % 10
    images = torch.rand(n, 1, 28, 28) * 0.5
    images[:, 0, 0, 0] = labels / 10  # the judge reads the label
    return images, labels


def _measuring(n_paths=8):
    images, labels = _digits()
    params = SimpleNamespace(
        magnitudes=[0.5, 15.0, 50.0], interpolation_steps=5, n_paths=n_paths, seeds=[0, 1], device="cpu"
    )
    return n2.Measuring(params, (images, labels, images, labels), Judge())


def _runs(seeds=(0, 1)):
    config = ExperimentConfig(
        model="classifier_ae", latent="point", latent_dim=4, widths=(8,), activation="relu", init_std=None
    )
    runs = {}
    for s in seeds:
        torch.manual_seed(s)
        classifier = SimpleNamespace(model=build_model(config, (1, 28, 28)), config=config, history=[])
        runs["classifier", s] = runs["classifier latent", s] = classifier
        ae = config.replace(model="mlp")
        runs["plain AE", s] = SimpleNamespace(model=build_model(ae, (1, 28, 28)), config=ae, history=[])
    return runs


def test_the_digit_like_score_is_the_lowest_confidence_and_zero_where_half_the_ink_went():
    response = {
        "magnitude": [1.0, 15.0, 50.0],
        "base_intensity": 0.2,
        "mean_intensity": [0.2, 0.05, 0.2],
        "confidence": [0.9, 0.95, 0.85],
    }
    assert n2.scores(response) == [0.9, 0.0, 0.85]
    assert n2.digit_like_score(response, 50.0) == 0.0 and n2.digit_like_score(response, 1.0) == 0.9
    assert math.isnan(n2.digit_like_score(response, 0.5))
    assert n2.DIGIT_LIKE_THROUGH.passes(0.85) and not n2.DIGIT_LIKE_THROUGH.passes(0.79)
    assert n2.DEGRADED_BY.passes(0.79) and not n2.DEGRADED_BY.passes(0.85)


def test_the_decoder_trains_on_the_frozen_classifier_and_the_plain_ae_has_its_shape():
    params = resolve("N2", n2.SETTINGS, "smoke", device="cpu")
    runs = n2.experiments(params)
    assert len(runs) == 3 * len(params.seeds)
    s = params.seeds[0]
    decoder, classifier, ae = runs["classifier latent", s], runs["classifier", s], runs["plain AE", s]
    assert decoder.init_from == classifier and decoder.freeze == ("encoder", "head")
    assert decoder.loss_terms == ae.loss_terms == (("recon", 1.0),) and classifier.loss_terms == (("xent", 1.0),)
    assert ae.model == "mlp" and (ae.widths, ae.latent_dim) == (classifier.widths, classifier.latent_dim)


def test_the_figure_set_is_digits_4_5_7_1_in_equal_shares():
    measuring = _measuring(n_paths=8)
    labels = measuring.mnist[3][measuring.figure_set]
    assert labels.tolist() == [4, 4, 5, 5, 7, 7, 1, 1]


@pytest.mark.parametrize("share, swapped", [(0.1, 1), (0.3, 2), (0.5, 4)])
def test_swapping_a_share_of_outputs_for_other_digits_morphs_that_share(share, swapped):
    measuring = _measuring(n_paths=8)
    index = measuring.figure_set
    outputs = measuring.mnist[2][index]
    out = measuring.swapped(outputs, index, share)
    changed = (out != outputs).flatten(1).any(1)
    assert int(changed.sum()) == swapped
    assert measuring.morphed(out, outputs) == pytest.approx(swapped / len(outputs))
    assert measuring.morphed(outputs, outputs) == 0.0


def test_a_set_that_lost_half_its_ink_scores_zero():
    measuring = _measuring()
    images = measuring.mnist[2][:20]
    assert measuring.set_score(images, images) == pytest.approx(0.95)
    assert measuring.set_score(0.4 * images, images) == 0.0


def test_one_measurement_gives_every_claim_a_value_a_control_pair_and_a_claim():
    measuring, runs = _measuring(), _runs()
    out = measuring(runs, final=True)
    assert set(out) == set(n2.CLAIMS) and all(set(v) == {0, 1} for v in out.values())
    for s in (0, 1):
        figure = measuring.details[s]["figure"]
        gap = figure["classifier latent"]["morphed"][-1] - figure["plain AE"]["morphed"][-1]
        assert out["N2-morphs-unlike-the-ae"][s] == pytest.approx(gap)
    controls = measuring.controls(runs)
    assert set(controls) == set(n2.CLAIMS)
    assert controls["N2-interpolation-smooth"].tell(n2.SMOOTH_PATHS)  # jumps fail, cross-fades pass
    params = SimpleNamespace(seeds=[0, 1], magnitudes=measuring.params.magnitudes, n_paths=8, epochs=2)
    claims = n2.claims(params, Followed([out, out]), measuring, controls, runs)
    assert [c.id for c in claims] == list(n2.CLAIMS)
    assert all(c.trajectory and c.controls is not None and c.budget == n2.BUDGET for c in claims)
    assert "+50" in claims[0].statement and "the wider average" in claims[0].measured
