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
        grid[:, r * (h + pad) : r * (h + pad) + h, q * (w + pad) : q * (w + pad) + w] = images[i]
    array = grid.permute(1, 2, 0).numpy()
    return array[..., 0] if c == 1 else array


def show_images(ax, images: torch.Tensor, ncol: int, title: str | None = None) -> None:
    """Draw an image grid on ``ax`` in grey (one channel) or colour, without axes."""
    grid = image_grid(images, ncol)
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def panel_grid(n: int, ncols: int = 3, size: tuple = (3.2, 2.6), **kwargs):
    """A figure with ``n`` panels, ``ncols`` to a row; unused panels are hidden."""
    import matplotlib.pyplot as plt

    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kwargs)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def draw_ellipsoid(ax, centre, radii, axes, color, alpha: float = 0.25, resolution: int = 16) -> None:
    """Draw an ellipsoid (as ``geometry.fit_ellipsoid`` returns it) on a 3-D axis."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, resolution), np.linspace(0, np.pi, resolution))
    sphere = np.stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)], axis=-1)
    surface = (sphere * radii.numpy()) @ axes.numpy().T + centre.numpy()
    ax.plot_surface(
        surface[..., 0], surface[..., 1], surface[..., 2], color=color, alpha=alpha, linewidth=0, shade=True
    )


def diagram_box(ax, xy, text, colour, width: float = 1.6, height: float = 0.7) -> None:
    """A rounded, labelled box with its lower-left corner at ``xy`` (architecture diagrams)."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch(xy, width, height, boxstyle="round,pad=0.05", fc=colour, ec="0.3"))
    ax.text(xy[0] + width / 2, xy[1] + height / 2, text, ha="center", va="center", fontsize=9)


def diagram_arrow(
    ax, start, end, style: str = "-|>", colour: str = "0.2", text: str | None = None, dashed: bool = False
) -> None:
    """An arrow from ``start`` to ``end``, optionally labelled at its middle."""
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle=style, mutation_scale=12, color=colour, linestyle="--" if dashed else "-"
        )
    )
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12, text, ha="center", fontsize=8, color=colour)


def captioned_images(images: torch.Tensor, captions, nrows: int = 2, title: str | None = None, size: float = 1.0):
    """One small panel per image [N, C, H, W] in [0, 1], each with its caption above, in
    ``nrows`` rows (decoded codebooks: P Fig 8, R Fig 3.5). Returns the figure."""
    import matplotlib.pyplot as plt

    ncols = -(-len(images) // nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, 1.7 * size * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < len(images):
            picture = images[k].detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
            ax.set_title(captions[k], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def claims_figure(claims, ncols: int = 3):
    """Each claim's measure along training: one line per seed over the epochs its runs were kept
    at (log axis), green where the criterion passes and red where it fails, the threshold dashed
    with its passing side shaded, and the documents' budget as a dotted line. A claim without a
    trajectory shows its per-seed values alone."""
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    shown = [c for c in claims if c.per_seed]
    fig, axes = panel_grid(len(shown), ncols=min(ncols, len(shown)), size=(3.4, 2.9))
    for ax, claim in zip(axes, shown):
        criterion = claim.criterion
        paths = claim.trajectory or {seed: [(1, value)] for seed, value in claim.per_seed.items()}
        values = [v for points in paths.values() for _, v in points if v is not None and np.isfinite(v)]
        for seed, points in paths.items():
            epochs, ys = zip(*points)
            ax.plot(epochs, ys, color="0.6", lw=1, zorder=1)
            colours = ["tab:green" if criterion.passes(v) else "tab:red" for v in ys]
            ax.scatter(epochs, ys, c=colours, s=18, zorder=2)
            ax.annotate(str(seed), (epochs[-1], ys[-1]), fontsize=6, xytext=(3, 0), textcoords="offset points")
        low = min([*values, criterion.threshold])
        high = max([*values, criterion.threshold])
        span = (high - low) or 1.0
        low, high = low - 0.08 * span, high + 0.08 * span
        ax.axhline(criterion.threshold, color="0.3", ls="--", lw=1)
        passing = high if criterion.comparison.startswith(">") else low
        ax.axhspan(criterion.threshold, passing, color="tab:green", alpha=0.08)
        ax.set_ylim(low, high)
        if claim.trajectory:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ends = [e for points in paths.values() for e, _ in points]
            if claim.budget:
                ax.axvline(claim.budget, color="0.3", ls=":", lw=1)
                ax.text(claim.budget, high, " budget", fontsize=6, va="top")
                ax.set_xlim(min(ends) / 1.3, max(max(ends), claim.budget) * 1.3)
            ax.set_xlabel(f"epochs — {claim.summary()}", fontsize=7)
        else:
            ax.set_xticks([])
            ax.set_xlabel(f"seeds — {claim.summary()}", fontsize=7)
        ax.set_title("\n".join(textwrap.wrap(claim.id, 34)), fontsize=8)
        ax.set_ylabel("\n".join(textwrap.wrap(criterion.measure, 38)), fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig
