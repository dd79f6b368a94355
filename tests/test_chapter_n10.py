"""N10's own measures: the perturbed position over the garment, the perturbation itself, the
second-nearest codes of the closeness control, and the transition-free share."""

import torch

from geovae_core import ExperimentConfig
from geovae_core.chapters import n10
from geovae_core.models import build_model
from geovae_core.profiles import resolve


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


def test_second_nearest_codes_differ_from_the_nearest_and_rank_zero_is_the_quantised_map():
    config = ExperimentConfig(
        model="conv_map",
        latent="codebook",
        widths=(4, 8),
        latent_dim=3,
        map_shape=(7, 7),
        activation="relu",
        init_std=None,
        codebook_size=6,
        codebook_decay=0.99,
    )
    torch.manual_seed(0)
    model = build_model(config, (1, 28, 28))
    model.codebook.initialise(torch.randn(20, 3))
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 28, 28))
    assert torch.equal(n10.quantised_to(model, out["mu"], 0), out["quantized"])
    second = n10.quantised_to(model, out["mu"], 1)
    assert not torch.equal(second, out["quantized"]) and second.shape == out["mu"].shape


def _classes(frames):
    """Probabilities of a stand-in judge: class 0 for dark images, class 1 (confidently) for bright ones."""
    bright = (frames.flatten(1).mean(1) > 0.5).float()
    p1 = 0.05 + 0.9 * bright
    return torch.stack([1 - p1, p1], dim=1)


def test_the_transition_free_share_tells_a_cross_fade_from_a_local_distortion():
    dark, bright = torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8)
    alpha = torch.linspace(0, 1, 5).view(1, -1, 1, 1, 1)
    fades = (1 - alpha) * dark[:, None] + alpha * bright[:, None]
    share, change, grows = n10.transition_free(fades, _classes)
    assert share == 0.0 and grows and change[0] == 0.0
    spot = torch.zeros(1, 1, 8, 8)
    spot[..., :2, :2] = 1.0
    blotched = (dark[:, None] + alpha * spot).clamp(0, 1)
    share, _, grows = n10.transition_free(blotched, _classes)
    assert share == 1.0 and grows
    assert n10.NO_TRANSITION.passes(1.0) and not n10.NO_TRANSITION.passes(0.0)


def test_the_chapter_trains_three_maps_per_seed_for_p_s_five_epochs():
    params = resolve("N10", n10.SETTINGS, "quick")
    runs = n10.experiments(params)
    assert len(runs) == 3 * len(params.seeds)
    assert {runs[name, 0].map_shape for name in ("a", "b", "main")} == {(2, 2), (4, 5), (7, 7)}
    assert all(c.epochs == n10.BUDGET and c.codebook_decay == 0.99 for c in runs.values())
