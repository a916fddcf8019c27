#!/bin/bash
# The mutation audit of issue 31: each one-line defect below survived the suite once; applied one at a
# time, each must now fail the tests named after it. Run by hand: bash scripts/check-mutants.sh
cd "$(dirname "$0")/.."
run() { # file, old, new, tests...
  f="$1"; old="$2"; new="$3"; shift 3
  cp "$f" "$f.mutant-backup"
  python3 -c "
import sys; p,o,n=sys.argv[1:4]; s=open(p).read(); assert o in s, 'pattern not found: '+o; open(p,'w').write(s.replace(o,n,1))" "$f" "$old" "$new" || { echo "SKIP (the code moved): $f"; rm -f "$f.mutant-backup"; return; }
  if timeout 600 .venv/bin/python -m pytest -q -x -p no:cacheprovider "$@" >/dev/null 2>&1; then echo "SURVIVED: $f: $old -> $new"; else echo "caught: $f: $old -> $new"; fi
  mv "$f.mutant-backup" "$f"
}
run alstudy/tracking/runs.py '"f1_macro": result.f1_macro,' '"f1_macro": result.balanced_accuracy,' tests/tracking/test_tracking.py
run alstudy/learning/checkpoint.py 'digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())' 'digest.update(f"{path}:{stat.st_size}".encode())' tests/learning/test_checkpoint.py
run alstudy/study/verdicts.py 'range(MIN_SEEDS, max_seeds + 1)' 'range(MIN_SEEDS, max_seeds)' tests/study/test_verdicts.py
run alstudy/study/statistics.py 'p_values.append(None if column[0] == 0 else 0.0)' 'p_values.append(None)' tests/study/test_statistics.py
run alstudy/data/preprocess.py 'labels.max() >= n_classes' 'labels.max() > n_classes' tests/data/test_formats.py
run alstudy/data/idx.py 'labels.max() >= N_CLASSES' 'labels.max() > N_CLASSES' tests/data/test_formats.py
run alstudy/data/cifar.py 'if labels.max() > 9:' 'if labels.max() > 10:' tests/data/test_formats.py
run alstudy/labelling/project.py '    candidates = [f for f in files if f not in labels and f not in waiting]' '    candidates = [f for f in files if f not in labels]' tests/labelling/test_labelling.py -k carried_once
run alstudy/labelling/label_studio.py 'return max(kept, key=_when, default=None)' 'return kept[0] if kept else None' tests/labelling/test_label_studio.py -k latest_annotation_wins
