"""N7 · The codebook-regularised autoencoder (P §3.2–3.4): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=16,
        widths=[512, 256],
        cnn_widths=[16, 32, 64, 128],
        pull_weight=0.1,
        epochs=5,
        codebook_size=20,
        codebook_epochs=20,
        batch_size=128,
        train_size=20000,
        n_paths=16,
    ),
    smoke=dict(
        latent_dim=8,
        widths=[64],
        cnn_widths=[8, 16, 32, 64],
        epochs=1,
        codebook_epochs=1,
        train_size=1000,
        n_paths=2,
    ),
    paper=dict(cnn_widths=[32, 64, 128, 256], train_size=100000, n_paths=64),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "codebook_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N7", "The codebook-regularised autoencoder", "P §3.2–3.4", SETTINGS)
