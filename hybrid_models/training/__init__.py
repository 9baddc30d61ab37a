"""Training: the generic loop every task uses (`fit`), and each task's batches, losses and
validation (`action` here; `captioning` and `vqa` beside it).
"""

from hybrid_models.training.loop import (
    Batch,
    MovableBatch,
    TrainConfig,
    TrainResult,
    TrainState,
    fit,
    move_batch,
)

__all__ = [
    "Batch",
    "MovableBatch",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "fit",
    "move_batch",
]
