"""DVC stage `al@<dataset>-<strategy>-<seed>`: one active-learning run, tracked in MLflow.

Writes results/<dataset>/<strategy>/s<seed>/ (learning curve, per-round details,
queried indices, final metrics). A killed run resumes from its last completed
round at the next `dvc repro`, in the same MLflow run, which stays nested under
its dataset's study run (alstudy/tracking/study_runs.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from alstudy import strategies
from alstudy.data.preprocess import SPLIT_FILES, load_splits
from alstudy.fileio import atomic_path, save_json
from alstudy.learning import checkpoint
from alstudy.learning.loop import LoopState, RoundResult, check_budget, run_loop
from alstudy.learning.model import CNN, configure
from alstudy.params import Params, load_params
from alstudy.paths import cell_lock, checkpoint_dir, prepared_dir, run_dir
from alstudy.runner import run_stage
from alstudy.scale import process_lock
from alstudy.tracking import metric_names, study_runs
from alstudy.tracking import runs as tracking

log = logging.getLogger("al")
# The code that shapes a run's numbers: a change to any of it discards the run's checkpoints. The other
# strategies' modules are not in it, so that fixing one strategy resumes every other strategy's cells.
LEARNING_CODE = [
    Path("alstudy/learning") / name for name in ("loop.py", "learner.py", "model.py", "training.py", "evaluation.py")
]
SHARED_STRATEGY_CODE = [Path("alstudy/strategies") / name for name in ("__init__.py", "_base.py", "_scores.py")]


def result_code(strategy: str) -> list[Path]:
    own = Path("alstudy/strategies") / f"{strategies.canonical(strategy)}.py"
    return [*LEARNING_CODE, Path("alstudy/data/preprocess.py"), *SHARED_STRATEGY_CODE, own]


def run_config(params: Params, dataset: str, strategy: str, seed: int) -> dict:
    """What shapes this run's numbers: its own strategy's options, not the other strategies'."""
    return {"dataset": dataset, "strategy": strategy, "seed": seed, **params.run_settings([strategy])}


def class_names(data_dir: Path) -> list[str]:
    return json.loads((data_dir / "meta.json").read_text()).get("class_names", [])


def write_results(out: Path, state: LoopState, pool_labels) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "curve.csv") as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["round", "n_labeled", "accuracy", "balanced_accuracy", "f1_macro", "seconds", "agreement"])
        for r in state.history:
            writer.writerow(
                [
                    r.round,
                    r.n_labeled,
                    f"{r.accuracy:.6f}",
                    f"{r.balanced_accuracy:.6f}",
                    f"{r.f1_macro:.6f}",
                    f"{r.seconds:.3f}",
                    "" if r.agreement is None else f"{r.agreement:.6f}",
                ]
            )
    with atomic_path(out / "queries.csv") as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["round", "pool_index", "label"])
        start = 0
        for r in state.history:
            stop = r.n_labeled
            for index in state.labeled[start:stop]:
                writer.writerow([r.round, index, int(pool_labels[index])])
            start = stop
    save_json(out / "rounds.json", state.to_dict()["history"])
    last = state.history[-1]
    metrics = {
        "accuracy": last.accuracy,
        "balanced_accuracy": last.balanced_accuracy,
        "f1_macro": last.f1_macro,
        "n_labeled": last.n_labeled,
        "rounds": last.round,
        "mean_round_seconds": sum(r.seconds for r in state.history) / len(state.history),
    }
    save_json(out / "metrics.json", metrics)
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)  # validated against params.yaml's data.datasets
    parser.add_argument("--strategy", required=True, choices=strategies.names())
    parser.add_argument("--seed", required=True, type=int)
    args = parser.parse_args(argv)
    params = load_params()
    params.data.check(args.dataset)
    configure(params.model)  # threads; a bfloat16 run on a CPU without bfloat16 units stops here
    # One process per cell: a second one stops in one line, an orphan of a killed `dvc repro` is stopped.
    stage = f"al@{args.dataset}-{args.strategy}-{args.seed}"
    with process_lock.hold(
        cell_lock(args.dataset, args.strategy, args.seed), stage, rerun_hint="rerun `dvc repro`"
    ) as me:
        process_lock.stop_when_orphaned(stage, me.starter)
        run_cell(args, params)


def run_cell(args: argparse.Namespace, params: Params) -> None:
    al, name = params.al, tracking.run_name(args.dataset, args.strategy, args.seed)

    data_dir = prepared_dir(args.dataset)
    pool, test = load_splits(data_dir)
    check_budget(al, len(pool.x), args.dataset)
    names, n_classes = class_names(data_dir), pool.y.shape[1]
    classes = metric_names.class_keys(names, n_classes)  # f1/<class>, queried/<class>

    folder = checkpoint_dir(args.dataset, args.strategy, args.seed)
    fp = checkpoint.fingerprint(
        run_config(params, args.dataset, args.strategy, args.seed),
        [data_dir / f for f in SPLIT_FILES],
        result_code(args.strategy),
    )
    resumed = checkpoint.load(folder, fp, name)

    def wants_model(round_: int) -> bool:
        return al.log_models == "every" or (al.log_models == "last" and round_ == al.rounds)

    experiment_id = tracking.setup(params.base)
    study_runs.describe_experiment(experiment_id, params)
    parent_id = study_runs.parent_run_id(experiment_id, args.dataset, params)  # made by the study's first cell
    config = tracking.config_key(run_config(params, args.dataset, args.strategy, args.seed))
    if not resumed:
        for run_id in tracking.remove_unfinished_runs(experiment_id, name, config):
            log.info("%s: starting over; removed the unfinished MLflow run %s of an earlier attempt", name, run_id)
    run = tracking.start_or_resume_run(
        experiment_id,
        name,
        resumed.run_id if resumed else None,
        tags={
            "dataset": args.dataset,
            "strategy": args.strategy,
            "seed": str(args.seed),
            "config": config,
            **study_runs.cell_tags(params, args.dataset, parent_id),
            **metric_names.class_tags(names, n_classes),
        },
        params={
            "dataset": args.dataset,
            "strategy": args.strategy,
            "seed": args.seed,
            **tracking.flat_params("al", al, {"strategy_options"}),
            **tracking.flat_params("model", params.model),
            **tracking.flat_params(f"al.strategy_options.{args.strategy}", al.options(args.strategy)),
        },
    )
    with tracking.ending(run):
        run_id = run.info.run_id
        state, model = (resumed.state, resumed.model) if resumed else (None, None)
        if resumed:
            log.info("%s: resuming after round %d of %d", name, resumed.state.next_round - 1, al.rounds)
            # Rounds checkpointed but not yet in MLflow (killed in between) are logged now, once.
            done = tracking.logged_steps(run_id)
            last = resumed.state.history[-1].round
            for result in resumed.state.history:
                if result.round not in done:
                    tracking.log_round(result, classes, model if result.round == last and wants_model(last) else None)

        def on_round(state: LoopState, result: RoundResult, cnn: CNN) -> None:
            checkpoint.save(folder, state, cnn.model, run_id, fp)
            tracking.log_round(result, classes, cnn.model if wants_model(result.round) else None)
            log.info(
                "%s round %d/%d: %d labelled, accuracy %.4f, F1 %.4f, %.1f s",
                name,
                result.round,
                al.rounds,
                result.n_labeled,
                result.accuracy,
                result.f1_macro,
                result.seconds,
            )

        cnn = CNN(pool.x.shape[1:], n_classes, params.model, model)
        state = run_loop(
            pool,
            test,
            args.strategy,
            al,
            cnn,
            args.seed,
            options=al.options(args.strategy),
            retrain_from_scratch=params.model.retrain_from_scratch,
            state=state,
            on_round=on_round,
            stop_set_size=params.stopping.stop_set,
        )
        out = run_dir(args.dataset, args.strategy, args.seed)
        metrics = write_results(out, state, pool.labels)
        tracking.log_final(out, metrics)
    for earlier in tracking.remove_superseded_runs(experiment_id, name, config, keep=run_id):
        log.info("%s: replaced the MLflow run %s of an earlier run of this cell (`dvc repro -f`)", name, earlier)
    checkpoint.discard(folder)
    log.info(
        "%s: done; final accuracy %.4f, F1 %.4f with %d labels",
        name,
        metrics["accuracy"],
        metrics["f1_macro"],
        metrics["n_labeled"],
    )


if __name__ == "__main__":
    run_stage(main)
