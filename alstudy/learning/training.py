"""Training the CNN: the epochs of one round, with early stopping, on whichever backend runs.

Same protocol as `fit(shuffle=True)`: the model's own loss and optimizer, the batch size,
a fresh seeded order every epoch (the last batch may be smaller), dropout active, and
early stopping on a held-out slice that keeps the best weights. With a recipe's augmentations,
each epoch trains on freshly augmented copies of the labelled images (the held-out slice stays as
it is). One compiled epoch per backend (alstudy/learning/backends/): the labelled set is handed
over once per round (once per epoch when augmented).
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from alstudy.learning import backends

# (images, generator) -> augmented images of the same shape (alstudy/recipes/augmentations).
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
AUGMENT_STREAM = 7  # tells the augmentations' generator apart from the order's, seeded by the same round seed


class Trainer:
    """Trains one model; the compiled epoch is traced once and serves every round."""

    def __init__(self, model: keras.Model, batch_size: int, augment: Augment | None = None):
        self.model, self.batch_size, self.augment = model, batch_size, augment
        self.loss = keras.losses.CategoricalCrossentropy()
        self._epochs = backends.current().Epochs(model, self.loss, batch_size)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        seed: int,
        validation_fraction: float = 0.0,
        patience: int = 3,
        after_epoch: Callable[[int], None] | None = None,
    ) -> int:
        """Train for `epochs` epochs (fewer with early stopping); return the number run.

        With validation_fraction > 0, a seeded slice of the labelled set is held out and
        training stops once its loss has not improved for `patience` epochs; the weights
        of the best epoch are kept.
        """
        compiled = self._epochs
        rng = np.random.default_rng(seed)
        n_val = int(len(x) * validation_fraction)
        val = None
        if n_val > 0:
            order = rng.permutation(len(x))
            val = (compiled.held(x[order[:n_val]]), compiled.held(y[order[:n_val]]))
            x, y = x[order[n_val:]], y[order[n_val:]]
        x_held, y_held = compiled.held(x), compiled.held(y)
        best, best_weights, waited = np.inf, None, 0
        for epoch in range(epochs):
            if self.augment is not None:  # its own generator: the batch order draws stay those of no augmentation
                x_held = compiled.held(self.augment(x, np.random.default_rng([seed, epoch, AUGMENT_STREAM])))
            compiled.epoch(x_held, y_held, rng.permutation(len(x)).astype(np.int32))
            if after_epoch is not None:  # e.g. a benchmark reading the model after each epoch
                after_epoch(epoch + 1)
            if val is None:
                continue
            loss = compiled.val_loss(*val)
            if loss < best:
                best, best_weights, waited = loss, self.model.get_weights(), 0
            else:
                waited += 1
                if waited >= patience:
                    break
        if best_weights is not None:
            self.model.set_weights(best_weights)
        return epoch + 1
