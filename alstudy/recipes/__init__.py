"""Training recipes: what a study trains its learner with, apart from the query strategy.

A recipe names a network (`networks/`: the trunk under the shared head), the augmentations of its
training images (`augmentations/`) and its training settings (epochs, batch size, learning rate...),
as overrides of params.yaml's `model` section. One registry per kind; adding a network or an
augmentation is adding one module. Nothing here imports Keras at import time: params validation
reads these registries without starting a backend.
"""
