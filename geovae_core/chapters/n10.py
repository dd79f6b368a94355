"""N10 · VQ-AE: from one code to a codebook of many (P §3.5, App. A.5; R §4.3): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        cnn_widths=[32, 64],
        map_channels=64,
        map_codebook_size=100,
        codebook_decay=0.99,
        pull_weight=0.1,
        epochs=5,
        batch_size=128,
        train_size=10000,
    ),
    smoke=dict(cnn_widths=[8, 16], map_channels=8, map_codebook_size=20, epochs=1, train_size=1000),
    paper=dict(cnn_widths=[64, 128], map_channels=512, train_size=60000),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "map_channels", "train_size"),
)

CHAPTER = Chapter("N10", "VQ-AE: from one code to a codebook of many", "P §3.5, App. A.5; R §4.3", SETTINGS)
