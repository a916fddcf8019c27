"""The active-learning loop and what it trains: the learner interface the loop talks to, the CNN
behind it (Keras, float32 or bfloat16), its compiled training, evaluation on the test split, and
round checkpoints that let a killed run resume with the same numbers."""

# Keras reads its backend once, when first imported: set it from params.yaml's model.backend before any
# module of this package imports Keras (alstudy/learning/backends/__init__.py).
from alstudy.learning.backends import activate_from_params as _activate  # noqa: E402

_activate()
