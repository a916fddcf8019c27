"""Running the grid's cells: several side by side on one machine, or as tasks on a Ray cluster
with a shared tracking server, with the same numbers as a sequential `dvc repro`."""
