"""Benchmarks, run by hand from the root of a clone: `python -m benchmarks.bench_al` (the loop against a naive
baseline), `benchmarks.bench_strategies` (query cost per strategy), `benchmarks.bench_label` (`alstudy label
next` on a large folder). They are not part of the installed package (pyproject.toml packages only alstudy),
and nothing in alstudy/ or stages/ imports them. What they measure and what they found:
docs/developer/benchmarks.md.
"""

from alstudy.runner import quiet_native_logs

quiet_native_logs()  # a package's __init__ runs before its modules, so before they import TensorFlow
