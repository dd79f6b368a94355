import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from geovae_core.plotting import captioned_images, image_grid  # noqa: E402


def test_an_image_grid_tiles_rows_with_white_padding():
    grid = image_grid(torch.zeros(3, 1, 2, 2), ncol=2)
    assert grid.shape == (5, 5) and grid[2].tolist() == [1.0] * 5 and grid[3:, 3:].min() == 1.0


def test_captioned_images_give_each_image_its_panel_and_caption():
    images = torch.rand(5, 1, 4, 4)
    fig = captioned_images(images, [f"code {k}" for k in range(5)], nrows=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and [ax.get_title() for ax in shown] == [f"code {k}" for k in range(5)]
    assert np.allclose(shown[3].images[0].get_array(), images[3, 0].numpy())
