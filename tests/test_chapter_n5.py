"""N5's new decoder is a warm start of the whole VAE, and its measures judge paths one by one."""

import math

import pytest
import torch

from geovae_core.chapters import n5
from geovae_core.geometry import jump_paths
from geovae_core.profiles import resolve


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


def test_smooth_share_judges_each_path_and_leaves_out_paths_that_do_not_change():
    ends = torch.rand(6, 2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    alpha = torch.linspace(0, 1, 9).view(1, -1, 1, 1, 1)
    fades = (1 - alpha) * ends[:, :1] + alpha * ends[:, 1:]
    assert n5.smooth_share(fades) == 1.0
    assert n5.smooth_share(jump_paths(fades)) == 0.0
    mixed = torch.cat([fades[:3], jump_paths(fades)[3:]])
    assert n5.smooth_share(mixed) == 0.5
    still = fades[:, :1].expand(-1, 9, -1, -1, -1)
    assert math.isnan(n5.smooth_share(still))
    assert n5.smooth_share(torch.cat([fades[:2], still[:2]])) == 1.0


def test_blurred_images_keep_their_shape_and_lose_detail():
    images = torch.zeros(2, 1, 16, 16)
    images[:, :, 8, 8] = 1.0
    out = n5.blurred(images)
    assert out.shape == images.shape and float(out.max()) < 0.2 and float(out.sum()) > 0.9


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
