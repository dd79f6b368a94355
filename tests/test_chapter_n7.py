"""N7's own measures: the share of solid stroke, the blurry-average reading, the smoothness
controls, and the chapter's runs and claims table."""

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from geovae_core.chapters import n7
from geovae_core.geometry import jump_paths
from geovae_core.profiles import resolve


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


def test_a_blurry_average_is_unread_and_grey_and_neither_alone_is_enough():
    stroke = _stroke_image()
    blur = gaussian_blur(stroke, 9, 2.0)
    images = torch.cat([stroke, blur, blur, stroke])
    measuring = n7.Measuring(None, {}, torch.zeros(0), _Judge([0.5, 0.5, 0.95, 0.3]))
    reading = measuring.read(images)
    assert reading["blurry"].tolist() == [False, True, False, False]
    assert reading["read"].tolist() == [False, False, True, False]


def test_the_smoothness_controls_fall_on_either_side_of_the_criterion():
    g = torch.Generator().manual_seed(0)
    paths = torch.rand(3, 2, 13, 1, 8, 8, generator=g)  # [images, dims, steps, C, H, W]
    fades = n7.crossfades(paths)
    assert torch.allclose(fades[..., 0, :, :, :], paths[..., 0, :, :, :])
    assert torch.allclose(fades[..., -1, :, :, :], paths[..., -1, :, :, :])
    assert n7.smooth_share(fades) == 1.0
    assert n7.smooth_share(jump_paths(fades.flatten(0, 1))) == 0.0
    assert n7.SMOOTH_PATHS.passes(n7.smooth_share(fades)) and not n7.SMOOTH_PATHS.passes(0.0)


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
    assert n7.CLEAR_DIGITS.passes(0.5) and not n7.CLEAR_DIGITS.passes(0.45)
    assert n7.BLURRY_AVERAGE.passes(1.0) and not n7.BLURRY_AVERAGE.passes(0.0)
    assert set(n7.CLAIMS) == {"N7-perturbations-smooth", "N7-codes-are-centres", "N7-a-blurry-average-code"}
