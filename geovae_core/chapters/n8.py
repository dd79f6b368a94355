"""N8 · A learnable cluster centre (R §3.1–3.2): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=32,
        cnn_widths=[32, 64],
        celeba_latent_dim=128,
        celeba_widths=[16, 32, 64, 128],
        epochs=10,
        celeba_epochs=5,
        batch_size=128,
        pool_size=64,
        pull_weight=1.0,
        centre_recon_weight=0.0,
        zero_weight=1.0,
        codebook_size=20,
        train_size=8000,
        coverage_size=1000,
    ),
    smoke=dict(
        latent_dim=8,
        cnn_widths=[8, 16],
        celeba_latent_dim=16,
        celeba_widths=[8, 16, 32, 64],
        epochs=2,
        celeba_epochs=1,
        train_size=512,
        coverage_size=128,
    ),
    paper=dict(celeba_widths=[32, 64, 128, 256], epochs=20, celeba_epochs=20, train_size=60000),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "celeba_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N8", "A learnable cluster centre", "R §3.1–3.2", SETTINGS)
