"""A smoke run of the strategy benchmark on a tiny pool: a change to the loop's interface must not break it."""
from __future__ import annotations

import json

from pipeline.preprocess import write_splits
from test_al_run import learnable_split


def tiny_prepared(folder):
    write_splits(folder, learnable_split(300, 0), learnable_split(60, 1), {"dataset": "tiny"})
    return folder


def test_strategy_benchmark_times_every_registered_strategy(tmp_path, capsys):
    from benchmarks import bench_strategies
    from pipeline.strategies import STRATEGIES

    data = tiny_prepared(tmp_path / "data")
    out = tmp_path / "strategies.json"
    bench_strategies.main(["--data-dir", str(data), "--labeled", "40", "--query-size", "10", "--skip-memory",
                           "--json", str(out)])
    timing = json.loads(out.read_text())["timing"]
    assert set(timing["strategies"]) == set(STRATEGIES)
    assert timing["n_candidates"] == 260 and timing["proba_pass_s"] > 0
    assert timing["strategies"]["bald"]["mc_passes"] == 20
    assert "coreset:" in capsys.readouterr().out
