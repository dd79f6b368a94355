"""Plotting helpers shared by the notebooks."""
from __future__ import annotations

import numpy as np
import torch


def image_grid(images: torch.Tensor, ncol: int, pad: int = 1) -> np.ndarray:
    """Tile images [N, C, H, W] in [0, 1] into one array (rows of ``ncol``), white padding."""
    images = images.detach().cpu().clamp(0, 1)
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    grid = torch.ones(c, nrow * (h + pad) - pad, ncol * (w + pad) - pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = images[i]
    array = grid.permute(1, 2, 0).numpy()
    return array[..., 0] if c == 1 else array


def show_images(ax, images: torch.Tensor, ncol: int, title: str | None = None) -> None:
    """Draw an image grid on ``ax`` in grey (one channel) or colour, without axes."""
    grid = image_grid(images, ncol)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
