"""DVC stage `label@<name>`: `next`, the next batch of a labelling project (alstudy/console/label.py).

It depends on labels/ and its output is the batches folder, so `dvc repro` asks for a new batch
after an import, or after labels were typed into a manifest (`next` imports those first).
"""

from alstudy.console.label import main
from alstudy.runner import run_stage

if __name__ == "__main__":
    run_stage(main)
