"""N2 · A classifier's latent is more compact (R §2): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=64,
        widths=[64, 64],
        epochs=10,
        batch_size=128,
        train_size=60000,
        magnitudes=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0],
        interpolation_steps=10,
        n_paths=64,
    ),
    smoke=dict(epochs=1, train_size=1000, n_paths=8),
    paper=dict(epochs=20, n_paths=256),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N2", "A classifier's latent is more compact", "R §2", SETTINGS)
