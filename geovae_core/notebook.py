"""What every notebook does first and last: plot defaults, the parameters table, glue."""
from __future__ import annotations

import matplotlib


def setup() -> None:
    """Plot defaults shared by every chapter."""
    matplotlib.rcParams.update({"figure.dpi": 90, "savefig.dpi": 90, "font.size": 9})


def show_parameters(parameters) -> None:
    """Display the profile and every parameter with where its value came from."""
    from IPython.display import Markdown, display

    display(Markdown(parameters.markdown()))


def glue_all(numbers: dict) -> None:
    """Glue each number into the page (``{glue:text}`key```), without displaying it."""
    from myst_nb import glue

    for key, value in numbers.items():
        glue(key, value, display=False)
