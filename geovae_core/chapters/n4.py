"""N4 · Spread regularisation instead of KL (P §2.2): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR, latent_dim=64, cnn_widths=[16, 32, 64, 128], epochs=6, batch_size=64, train_size=100000
    ),
    smoke=dict(latent_dim=16, cnn_widths=[8, 16, 32, 64], epochs=1, train_size=256),
    paper=dict(latent_dim=128, cnn_widths=[32, 64, 128, 256], epochs=10),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "latent_dim", "cnn_widths"),
)

CHAPTER = Chapter("N4", "Spread regularisation instead of KL", "P §2.2", SETTINGS)
