"""N6 · Dynamic Latent Coverage (P §3.1, App. A.1): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        likelihood="bernoulli",
        latent_dim=16,
        widths=[512, 256],
        epochs=10,
        celeba_latent_dim=32,
        cnn_widths=[16, 32, 64, 128],
        celeba_epochs=5,
        batch_size=128,
        train_size=10000,
        coverage_size=1000,
    ),
    smoke=dict(
        widths=[64],
        cnn_widths=[8, 16, 32, 64],
        celeba_latent_dim=16,
        epochs=2,
        celeba_epochs=2,
        train_size=1000,
        coverage_size=200,
    ),
    paper=dict(cnn_widths=[32, 64, 128, 256], epochs=20, celeba_epochs=10, train_size=60000),
    shared=("seeds", "device"),
    main=("epochs", "celeba_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N6", "Dynamic Latent Coverage", "P §3.1, App. A.1", SETTINGS)
