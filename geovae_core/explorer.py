"""The latent explorer of N11 (K Fig 2 to touch): 2-D models' decoders exported with their
encoded test means, and a few dozen lines of plain JavaScript (``explorer.js``) that decode the
point under the reader's cursor in the page, offline.

``explorer_html`` returns the HTML a notebook displays: the data inline (float16 weights, at most
about 1 MB a model), the script inline, and ``check``: latent points with the torch decoder's own
outputs there, for the browser test to compare the page's decoding with.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).with_name("explorer.js")
CHECK_POINTS = 12


def _halves(tensor: torch.Tensor) -> str:
    """A tensor as base64 of its float16 values, in row-major order."""
    return base64.b64encode(tensor.detach().cpu().to(torch.float16).contiguous().numpy().tobytes()).decode()


def exported(name: str, model, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """One 2-D model for the explorer: its decoder's two layers (z-h-784: ``Linear, Tanh, Linear``,
    the sigmoid applied in the page), the means of ``images`` encoded (the pad's points), their
    labels, and the pad's bounds (the middle 98% of the means, widened by a tenth)."""
    first, second = model.decoder[0], model.decoder[2]
    if first.in_features != 2 or not isinstance(model.decoder[1], torch.nn.Tanh):
        raise ValueError(f"{name}: the explorer decodes a z = 2 decoder Linear-Tanh-Linear")
    with torch.no_grad():
        codes = model.encode(images)[0].cpu()
    low, high = torch.quantile(codes, 0.01, dim=0), torch.quantile(codes, 0.99, dim=0)
    margin = (high - low) / 10
    bounds = [float(v) for v in (low[0] - margin[0], high[0] + margin[0], low[1] - margin[1], high[1] + margin[1])]
    return {
        "name": name,
        "w1": _halves(first.weight),
        "b1": _halves(first.bias),
        "w2": _halves(second.weight),
        "b2": _halves(second.bias),
        "codes": _halves(codes),
        "labels": labels.cpu().tolist(),
        "bounds": bounds,
    }


def check_points(model, bounds: list, count: int = CHECK_POINTS, seed: int = 0) -> dict:
    """``count`` latent points spread over the pad and the torch decoder's outputs there, in
    [0, 1] (what the page's decoding must equal to within 1/255)."""
    generator = torch.Generator().manual_seed(seed)
    x0, x1, y0, y1 = bounds
    z = torch.rand(count, 2, generator=generator) * torch.tensor([x1 - x0, y1 - y0]) + torch.tensor([x0, y0])
    with torch.no_grad():
        pixels = model.decode(z.to(next(model.parameters()).device)).flatten(1).cpu()
    return {"z": z.tolist(), "pixels": base64.b64encode(pixels.numpy().astype(np.float32).tobytes()).decode()}


def explorer_html(models: dict, images: torch.Tensor, labels: torch.Tensor) -> str:
    """The explorer for ``models`` ({name: a trained z = 2 model}), side by side, over the
    encoded ``images`` (coloured by ``labels``, with a legend)."""
    data = {"models": [], "check": {}}
    for name, model in models.items():
        entry = exported(name, model, images, labels)
        data["models"].append(entry)
        data["check"][name] = check_points(model, entry["bounds"])
    root = f"geovae-explorer-{uuid.uuid4().hex[:8]}"
    style = (
        f"#{root} {{display:flex; flex-wrap:wrap; gap:1.5em; align-items:flex-start}} "
        f"#{root} canvas {{border:1px solid #bbb; margin:2px}} "
        f"#{root} .geovae-explorer-legend {{flex-basis:100%; font-size:0.85em}} "
        f"#{root} .geovae-explorer-where {{font-size:0.8em; font-family:monospace}}"
    )
    return (
        f'<div class="geovae-explorer" id="{root}"></div><style>{style}</style>'
        f'<script type="application/json" id="{root}-data">{json.dumps(data)}</script>'
        f"<script>{SCRIPT.read_text()}\n"
        f'geovaeExplorerStart(document.getElementById("{root}"), '
        f'JSON.parse(document.getElementById("{root}-data").textContent));</script>'
    )
