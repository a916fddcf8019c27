"""The active-learning loop and what it trains: the learner interface the loop talks to, the CNN
behind it (Keras, float32 or bfloat16), its compiled training, evaluation on the test split, and
round checkpoints that let a killed run resume with the same numbers."""
