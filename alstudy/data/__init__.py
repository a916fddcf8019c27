"""Datasets: one registry of built-in datasets and image folders; verified downloads from several
sources; readers of the upstream formats (IDX, CIFAR-10 binary); preprocessing into memory-mapped
splits (pixels in [0, 1], one-hot labels); imbalanced variants."""
