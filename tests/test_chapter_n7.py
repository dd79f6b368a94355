"""N7's own measures: the share of solid stroke, the two readings of a decoded code and their
continuous measures, the model as training starts it, the controls per seed, and the chapter's runs."""

import math
from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from conftest import tiny_config
from geovae_core.chapters import n7
from geovae_core.data import experiment_split
from geovae_core.profiles import resolve
from geovae_core.training import train


def _stroke_image():
    image = torch.zeros(1, 1, 28, 28)
    image[..., 6:22, 12:16] = 1.0  # a solid vertical bar, like a 1
    image[..., 6:22, 11] = 0.4  # and an anti-aliased edge
    return image


def test_sharpness_reads_solid_strokes_high_blurs_and_blank_images_low():
    stroke = _stroke_image()
    sharp = n7.sharpness(stroke)
    assert float(sharp) == pytest.approx(64 / 80)
    assert float(n7.sharpness(gaussian_blur(stroke, 9, 2.0))) < 0.2 < float(sharp)
    assert float(n7.sharpness(torch.zeros(1, 1, 28, 28))) == 0.0


class _Judge:
    """A judge that gives each image the probability it is told to."""

    def __init__(self, p):
        self.p = torch.tensor(p)

    def probabilities(self, images):
        top = self.p.view(-1, 1)
        return torch.cat([top, (1 - top).expand(-1, 9) / 9], dim=1)


class _InkJudge:
    """A judge whose probability grows with an image's solid pixels: real digits (solid strokes)
    are read, the grey of an untrained decoder is not."""

    def probabilities(self, images):
        solid = (images.flatten(1) >= n7.SOLID).sum(1)
        top = (1 - 0.5 * torch.exp(-solid / 30) - 0.01 * images.flatten(1).mean(1)).view(-1, 1)
        return torch.cat([top, (1 - top).expand(-1, 9) / 9], dim=1)


def test_a_blurry_average_is_unread_and_grey_and_neither_alone_is_enough():
    stroke = _stroke_image()
    blur = gaussian_blur(stroke, 9, 2.0)
    images = torch.cat([stroke, blur, blur, stroke])
    measuring = n7.Measuring(None, {}, torch.zeros(0), _Judge([0.5, 0.5, 0.95, 0.3]))
    reading = measuring.read(images)
    assert reading["blurry"].tolist() == [False, True, False, False]
    assert reading["read"].tolist() == [False, False, True, False]
    assert n7.blurriest(reading) == pytest.approx(max(0.5 / 0.9, float(n7.sharpness(blur)) / n7.STROKE))


def test_the_continuous_measures_pass_exactly_where_the_counts_do():
    """'At least half of the codes read' and 'at least one blurry average', read continuously."""
    g = torch.Generator().manual_seed(0)
    for size in (1, 2, 5, 20):
        for _ in range(200):
            tie = torch.rand(size, generator=g) < 0.3  # some codes exactly at the threshold
            p = torch.where(tie, torch.tensor(0.9, dtype=torch.float64), torch.rand(size, generator=g).double())
            sharp = torch.rand(size, generator=g) * 0.4
            reading = {"score": torch.maximum(p / 0.9, sharp / n7.STROKE)}
            read_half = int((p >= 0.9).sum()) >= size / 2
            assert n7.CLEAR_DIGITS.passes(n7.half_reach(p)) == read_half
            blurry = bool(((p < 0.9) & (sharp < n7.STROKE)).any())
            assert n7.BLURRY_AVERAGE.passes(n7.blurriest(reading)) == blurry
    assert n7.half_reach(torch.tensor([0.2, 0.95, 0.5, 0.99])) == pytest.approx(0.95)


def test_least_smooth_takes_the_highest_unevenness_and_keeps_nan():
    assert n7.least_smooth([1.2, 3.0, 1.5]) == 3.0
    assert math.isnan(n7.least_smooth([1.2, math.nan]))


def _codebook_config(size, **changes):
    return tiny_config(
        "mlp", latent="codebook", codebook_size=size, loss_terms=(("recon", 1.0), ("pull", 0.1)), **changes
    )


def test_the_codebook_at_start_is_the_one_training_starts_from():
    config = _codebook_config(4, lr=1e-12, epochs=1)  # a step too small to move anything
    trained = train(config, progress=False).model
    start = n7.codebook_at_start(config)
    assert torch.allclose(start.codebook.codes, trained.codebook.codes, atol=1e-6)
    assert len(torch.unique(start.codebook.codes, dim=0)) == 4
    first = next(start.decoder.parameters())
    assert torch.allclose(first, next(trained.decoder.parameters()), atol=1e-6)
    assert not torch.equal(start.codebook.codes, n7.codebook_at_start(config.replace(seed=1)).codebook.codes)


def test_the_controls_are_real_per_seed_and_tell_smooth_from_jumping_paths(monkeypatch):
    monkeypatch.setattr(n7, "DATASETS", {"mnist": "mlp"})
    seeds, size = [0, 1], 4
    runs = {}
    for s in seeds:
        for key, config in (("mnist", _codebook_config(1, seed=s)), ("book", _codebook_config(size, seed=s))):
            runs[key, s] = train(config, progress=False)
    x_train, _, x_test, labels = experiment_split(runs["mnist", 0].config.replace(test_size=2000))
    params = SimpleNamespace(n_paths=3, codebook_size=size, seeds=seeds)
    measuring = n7.Measuring(params, {"mnist": x_test}, labels, _InkJudge(), {"mnist": x_train[:200]})
    each = {s: measuring.controls(runs, s) for s in seeds}
    assert set(each[0]) == set(n7.CLAIMS)
    for claim, ((absent, absent_text), (present, present_text)) in each[0].items():
        (other_absent, other_absent_text), (other_present, other_present_text) = each[1][claim]
        assert (absent_text, present_text) == (other_absent_text, other_present_text), claim
        assert absent != other_absent and present != other_present, claim
    for s in seeds:
        (jumping, _), (even, _) = each[s]["N7-perturbations-smooth"]
        assert not n7.SMOOTH_PATHS.passes(jumping) and n7.SMOOTH_PATHS.passes(even)
        (at_start, _), (digits, _) = each[s]["N7-codes-are-centres"]
        assert not n7.CLEAR_DIGITS.passes(at_start) and n7.CLEAR_DIGITS.passes(digits)
        (digits, _), (at_start, _) = each[s]["N7-a-blurry-average-code"]
        assert not n7.BLURRY_AVERAGE.passes(digits) and n7.BLURRY_AVERAGE.passes(at_start)


def test_the_chapter_trains_one_code_per_dataset_and_the_codebook_for_every_seed():
    params = resolve("N7", n7.SETTINGS, "quick")
    runs = n7.experiments(params)
    assert len(runs) == 4 * len(params.seeds)
    for s in params.seeds:
        assert {runs[d, s].codebook_size for d in n7.DATASETS} == {1}
        assert runs["book", s].codebook_size == params.codebook_size == 20
        assert runs["book", s].epochs == n7.FIG8_BUDGET and runs["mnist", s].epochs == n7.FIG7_BUDGET
        assert runs["celeba", s].model == "conv" and runs["mnist", s].loss_terms[1] == ("pull", 0.1)


def test_the_claims_criteria_pass_and_fail_where_their_documents_say():
    assert n7.CLEAR_DIGITS.passes(0.9) and not n7.CLEAR_DIGITS.passes(0.89)
    assert n7.BLURRY_AVERAGE.passes(0.99) and not n7.BLURRY_AVERAGE.passes(1.0)
    assert set(n7.CLAIMS) == {"N7-perturbations-smooth", "N7-codes-are-centres", "N7-a-blurry-average-code"}
