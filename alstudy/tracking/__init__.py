"""MLflow tracking: where the store is (sqlite at the project root, or a server), how runs and
metrics are named, what each round logs, and a study as one parent run with its cells nested."""
