"""What a finished grid says: learning curves summarised per seed (AUBC), paired comparisons with
Holm's correction and the seeds that would decide them, per-round detail, plots and the report."""
