"""Deep active learning on images: data, strategies, loop, tracking and plots.

Each module does one job; the DVC stages in ``stages/`` glue them together.
"""
import os

# Quiet TensorFlow's C++ logging before any module imports it (keras, mlflow.keras).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
