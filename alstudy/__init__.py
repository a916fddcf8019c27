"""Deep active learning on images, as a reproducible DVC + MLflow study.

The package is the architecture, one concern per subpackage:

- ``data``: the dataset registry, verified downloads, readers of the upstream formats and of image
  folders, preprocessing into memory-mapped splits, imbalanced variants.
- ``strategies``: query strategies, one module each, registered by name with what they need.
- ``learning``: the CNN, its training, the learner interface, the active-learning loop, evaluation
  and round checkpoints.
- ``tracking``: MLflow: the store, run and metric names, a study as one parent run with its cells.
- ``study``: what a finished grid means: learning-curve summaries, paired statistics and verdicts,
  plots and the report.
- ``labelling``: labelling a user's images batch by batch, and importing what a person labelled.
- ``scale``: running the grid's cells side by side on every core, or on a Ray cluster.
- ``console``: the ``alstudy`` command a person types; ``bench``: the benchmarks, run by hand.

Shared plumbing sits at the top: ``params`` (params.yaml, validated), ``paths``, ``fileio``,
``errors`` and ``runner`` (how an entry point reports errors). The DVC stages in ``stages/`` are
thin entry points over this package.

Importing the package changes no setting: the entry points do that (``runner.quiet_native_logs``,
``learning.model.configure``).
"""
