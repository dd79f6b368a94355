"""N2's measures, on untrained tiny models, synthetic digits and a judge whose readings are known:
the digit-like score and its ink rule, the contrast the morph claim reads, the swap control, and
that one measurement gives every claim a value, a control pair and a claim."""

from types import SimpleNamespace

import pytest
import torch

from geovae_core.chapters import n2
from geovae_core.config import ExperimentConfig
from geovae_core.models import build_model
from geovae_core.notebook import Followed
from geovae_core.profiles import resolve
from geovae_core.verdicts import Controls


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


def test_ink_kept_at_every_step_then_digits_at_the_end():
    response = {
        "magnitude": [1.0, 15.0, 50.0],
        "base_intensity": 0.2,
        "mean_intensity": [0.2, 0.15, 0.2],
        "confidence": [0.9, 0.5, 0.85],  # unreadable on the way, a digit at +50: passes
    }
    assert n2.digits_with_ink(response) == 0.85 and n2.DIGITS_WITH_INK.passes(0.85)
    dark = {**response, "mean_intensity": [0.2, 0.09, 0.2]}  # lost over half its ink at +15
    assert n2.digits_with_ink(dark) == 0.0 and not n2.DIGITS_WITH_INK.passes(0.0)


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


def test_the_other_digit_measure_weights_each_reading_of_another_digit_by_its_confidence():
    measuring = _measuring(n_paths=8)
    index = measuring.figure_set
    outputs = measuring.mnist[2][index]
    others = measuring.mnist[2][measuring.next_class(index, 0)]
    assert measuring.other_digit(outputs, outputs) == 0.0
    assert measuring.other_digit(others, outputs) == pytest.approx(0.95)  # every one read as another digit
    half = torch.cat([outputs[:4], others[4:]])
    assert measuring.other_digit(half, outputs) == pytest.approx(0.95 / 2)
    labels = measuring.mnist[3]
    following = {4: 5, 5: 7, 7: 1, 1: 4}
    assert [int(labels[j]) for j in measuring.next_class(index, 0)] == [following[int(labels[i])] for i in index]
    assert not set(measuring.next_class(index, 0).tolist()) & set(index.tolist())
    assert measuring.next_class(index, 2).tolist() != measuring.next_class(index, 0).tolist()  # another draw


def test_one_measurement_gives_every_claim_a_value_a_control_pair_and_a_claim():
    measuring, runs = _measuring(), _runs()
    out = measuring(runs, final=True)
    assert set(out) == set(n2.CLAIMS) and all(set(v) == {0, 1} for v in out.values())
    for s in (0, 1):
        other = measuring.details[s]["other"]
        assert out["N2-morphs-unlike-the-ae"][s] == pytest.approx(other["classifier latent"] - other["plain AE"])
    controls = Controls.over_seeds({s: measuring.controls(runs, s) for s in (0, 1)})
    assert set(controls) == set(n2.CLAIMS)
    smooth = controls["N2-interpolation-smooth"]  # each seed's own models and draws (the stand-in judge
    assert smooth.absent[1][0] != smooth.absent[1][1] and smooth.present[1][0] != smooth.present[1][1]  # is fixed)
    params = SimpleNamespace(seeds=[0, 1], magnitudes=measuring.params.magnitudes, n_paths=8, epochs=2)
    claims = n2.claims(params, Followed([out, out]), measuring, controls, runs)
    assert [c.id for c in claims] == list(n2.CLAIMS)
    assert all(c.trajectory and c.controls is not None and c.budget == n2.BUDGET for c in claims)
    assert "+50" in claims[0].statement and "the wider average" in claims[0].measured
