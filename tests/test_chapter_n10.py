"""N10's own measures: the perturbed position over the garment, the perturbation itself, the
error ratio and the transition-free measure (which passes exactly when four in five images are
never read as another class), and the controls, per seed, on real models at their initialisation."""

import math
from types import SimpleNamespace

import pytest
import torch

from geovae_core.chapters import n10
from geovae_core.data import experiment_split
from geovae_core.profiles import resolve
from geovae_core.training import initial_model


def test_the_garment_position_is_the_block_with_the_most_ink():
    images = torch.zeros(2, 1, 28, 28)
    images[0, :, 12:16, 20:24] = 1.0  # map position (3, 5)
    images[1, :, 0:8, 0:4] = 0.5  # (0, 0) and (1, 0) with half the ink...
    images[1, :, 24:28, 8:12] = 0.9  # ... and (6, 2) with more
    assert n10.garment_positions(images, (7, 7)).tolist() == [[3, 5], [6, 2]]


def test_a_perturbation_moves_the_first_channel_of_one_vector_only():
    mu = torch.zeros(2, 4, 7, 7)
    positions = torch.tensor([[3, 5], [0, 0]])
    paths = n10.perturbed_maps(mu, positions, [0, 1, 10])
    assert paths.shape == (2, 3, 4, 7, 7)
    assert paths[0, :, 0, 3, 5].tolist() == [0, 1, 10] and paths[1, :, 0, 0, 0].tolist() == [0, 1, 10]
    assert paths.abs().sum() == 2 * 11


def _classes(frames):
    """Probabilities of a stand-in judge: class 0 for dark images, class 1 (confidently, up to
    0.95) for bright ones, changing steeply but smoothly at a mean intensity of 0.5."""
    p1 = 0.05 + 0.9 * torch.sigmoid(40 * (frames.flatten(1).mean(1) - 0.5))
    return torch.stack([1 - p1, p1], dim=1)


def test_the_transition_free_measure_tells_a_cross_fade_from_a_local_distortion():
    dark, bright = torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8)
    alpha = torch.linspace(0, 1, 5).view(1, -1, 1, 1, 1)
    fades = n10.transition_free((1 - alpha) * dark[:, None] + alpha * bright[:, None], _classes)
    assert fades["kept"] == 0.0 and fades["grows"] and fades["change"][0] == 0.0
    assert fades["measure"] == pytest.approx(0.95) and not n10.NO_TRANSITION.passes(fades["measure"])  # class 1
    spot = torch.zeros(1, 1, 8, 8)
    spot[..., :2, :2] = 1.0
    blotched = n10.transition_free((dark[:, None] + alpha * spot).clamp(0, 1), _classes)
    assert blotched["kept"] == 1.0 and blotched["grows"] and n10.NO_TRANSITION.passes(blotched["measure"])
    there_and_back = torch.tensor([0.0, 0.5, 1.0, 0.5]).view(1, -1, 1, 1, 1)
    back = n10.transition_free(dark[:, None] + there_and_back * spot, _classes)
    assert not back["grows"] and back["measure"] > 1  # a change that shrinks is no growing distortion


def test_the_transition_measure_passes_exactly_when_four_in_five_images_are_never_another_class():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        sharp = torch.rand(1, generator=generator) * 8
        logits = sharp * torch.randn(10, 6, 3, generator=generator)
        frames = torch.linspace(0, 1, 6).view(1, 6, 1, 1, 1).expand(10, 6, 1, 2, 2)  # a change that grows
        probabilities = logits.flatten(0, 1).softmax(1)
        read = n10.transition_free(frames, lambda images: probabilities)  # noqa: B023 (used at once)
        assert n10.NO_TRANSITION.passes(read["measure"]) == (read["kept"] >= n10.KEPT_SHARE)


def test_the_error_ratio_reads_the_reconstructions_against_the_direct_ones():
    images = torch.zeros(3, 1, 4, 4)
    assert n10.error_ratio(images, images + 0.2, images + 0.1) == pytest.approx(4.0)


class _Judge:
    """A stand-in for the sample-quality protocol: ``_classes``' judge, and a score that grows
    with the mean intensity (pixel noise scores 1)."""

    n = 32
    noise = {"excess": 1.0, "resolution": 0.01}
    probabilities = staticmethod(_classes)

    def score(self, images):
        assert len(images) == self.n
        return {"excess": float(images.mean())}


def test_every_claim_has_controls_per_seed_from_that_seed_s_models():
    params = resolve("N10", n10.SETTINGS, "smoke")
    runs = {}
    for key, config in n10.experiments(params).items():
        model = initial_model(config)
        with torch.no_grad():
            model.initialise_codebook(experiment_split(config)[0], torch.Generator().manual_seed(config.seed))
        runs[key] = SimpleNamespace(model=model, config=config)
    x = 0.2 * torch.rand(_Judge.n, 1, 28, 28)
    x[_Judge.n // 2 :] += 0.8  # dark images (class 0) and bright ones (class 1 for the stand-in judge)
    measuring = n10.Measuring(params, _Judge(), x, n10.garment_positions(x, (7, 7)))
    first, second = (measuring.controls(runs, s) for s in params.seeds)
    assert set(first) == set(n10.CLAIMS)
    for claim in n10.CLAIMS:
        for side in (0, 1):
            assert first[claim][side][1] == second[claim][side][1]  # the same input, described without the seed
            assert first[claim][side][0] != second[claim][side][0]  # computed from each seed's models or draw
            assert math.isfinite(first[claim][side][0])
    with torch.no_grad():
        mu = runs["main", 0].model(x)["mu"]
    paths = measuring.towards_another_class(mu, x, torch.Generator().manual_seed(0))
    ends = paths[:, -1].flatten(1)
    partner = torch.cdist(ends, mu.flatten(1)).argmin(1)  # whose map each path ends at
    assert torch.equal(paths[:, 0], mu) and torch.allclose(ends, mu[partner].flatten(1), atol=1e-6)
    assert torch.equal(_classes(x[partner]).argmax(1), 1 - _classes(x).argmax(1))  # a class the judge reads as other


def test_the_chapter_trains_three_maps_per_seed_for_p_s_five_epochs():
    params = resolve("N10", n10.SETTINGS, "quick")
    runs = n10.experiments(params)
    assert len(runs) == 3 * len(params.seeds)
    assert {runs[name, 0].map_shape for name in ("a", "b", "main")} == {(2, 2), (4, 5), (7, 7)}
    assert all(c.epochs == n10.BUDGET and c.codebook_decay == 0.99 for c in runs.values())
