import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from geovae_core.plotting import captioned_images, claims_figure, image_grid  # noqa: E402


def test_an_image_grid_tiles_rows_with_white_padding():
    grid = image_grid(torch.zeros(3, 1, 2, 2), ncol=2)
    assert grid.shape == (5, 5) and grid[2].tolist() == [1.0] * 5 and grid[3:, 3:].min() == 1.0


def test_captioned_images_give_each_image_its_panel_and_caption():
    images = torch.rand(5, 1, 4, 4)
    fig = captioned_images(images, [f"code {k}" for k in range(5)], nrows=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and [ax.get_title() for ax in shown] == [f"code {k}" for k in range(5)]
    assert np.allclose(shown[3].images[0].get_array(), images[3, 0].numpy())


def test_the_claims_figure_draws_each_seed_along_training_with_the_threshold_and_the_budget():
    from geovae_core.criteria import SMOOTH
    from geovae_core.results import Claim

    trajectory = {0: [(1, 3.0), (2, 2.2), (5, 1.5), (10, 1.4)], 1: [(1, 2.5), (2, 1.9), (5, 1.7), (10, 1.6)]}
    claim = Claim("N0-x", "P Fig 1", "s", "d", SMOOTH, {0: 1.4, 1: 1.6}, trajectory=trajectory, budget=20)
    fig = claims_figure([claim])
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 4]
    assert [list(line.get_ydata()) for line in lines] == [[3.0, 2.2, 1.5, 1.4], [2.5, 1.9, 1.7, 1.6]]
    assert ax.get_xscale() == "log" and ax.get_xlim()[1] >= 20  # the documents' budget is on the axis
    vertical = [line for line in ax.get_lines() if list(line.get_xdata()) == [20, 20]]
    horizontal = [line for line in ax.get_lines() if list(line.get_ydata()) == [2.0, 2.0]]
    assert vertical and horizontal and "settled" in ax.get_xlabel()
