"""MLflow: where the store is, how runs are named, and what each round logs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import sqlalchemy
from mlflow.entities import LoggedModelStatus, RunStatus
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import Schema, TensorSpec

from alstudy.errors import PipelineError
from alstudy.params import BaseParams
from alstudy.paths import project_root
from alstudy.tracking import metric_names, outage, store
from alstudy.tracking.outage import TrackingUnavailable, patient, patiently

if TYPE_CHECKING:  # a type only: tracking does not need the learning code to run
    from alstudy.learning.loop import RoundResult

log = logging.getLogger("tracking")
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` listens unless told otherwise


def tracking_uri(base: BaseParams) -> str:
    """MLFLOW_TRACKING_URI, else params, else sqlite at the project root (also from `dvc exp --temp` copies)."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI") or base.mlflow_tracking_uri or f"sqlite:///{project_root() / STORE_FILE}"
    )


def ui_address(uri: str) -> str:
    """Where a person browses the store: the tracking server itself, or `mlflow ui`'s default address."""
    return uri.rstrip("/") if store.is_remote(uri) else UI_ADDRESS


def chart_view_url(experiment_id: str, uri: str) -> str:
    """The experiment's runs chart view, every chart MLflow makes (MLflow 3 opens an experiment on an
    overview page instead); a dataset's learning curves first: curves_view.url."""
    return f"{ui_address(uri)}/#/experiments/{experiment_id}/runs?compareRunsMode=CHART"


def setup(base: BaseParams) -> str:
    """Point MLflow at the store and experiment; return the experiment id.

    Safe with many runs starting at once: see alstudy/tracking/store.py."""
    uri = tracking_uri(base)
    mlflow.set_tracking_uri(store.with_busy_timeout(uri))
    outage.configure(uri, base.tracking_wait_seconds)
    with store.exclusive(uri):
        for attempt in (1, 2):
            try:
                return patiently("opening the experiment", _experiment_id, base.experiment, uri)
            except TrackingUnavailable:
                raise
            except (mlflow.exceptions.MlflowException, sqlalchemy.exc.SQLAlchemyError) as error:
                aside = store.set_aside_if_empty(uri) if attempt == 1 else None
                if aside is None:
                    raise PipelineError(store.describe_failure(uri, error)) from None
                log.warning(
                    "MLflow store %s: its creation stopped half-way (%s) and it held no runs; moved it to %s "
                    "and made a new one",
                    store.sqlite_path(uri),
                    str(error).strip().splitlines()[0][:120],
                    aside,
                )


def _experiment_id(name: str, uri: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # The server decides where artifacts go (served through it); locally an explicit root, since a
    # relative default would land in whatever folder ran first.
    location = None
    if not store.is_remote(uri):
        artifacts = project_root() / ARTIFACTS_DIR
        artifacts.mkdir(mode=0o700, exist_ok=True)  # models and plots: the owner's alone, as the store
        location = artifacts.as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException as error:
        # Another worker created it between our look and our create (no file lock spans a server).
        if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.get_experiment_by_name(name).experiment_id


def run_name(dataset: str, strategy: str, seed: int) -> str:
    return f"{dataset}-{strategy}-s{seed}"


def round_metrics(result: RoundResult, classes: list[str]) -> dict[str, float]:
    """The per-round metric names, built in one place so the UI charts line up across runs.

    `classes`: the class keys of alstudy/tracking/metric_names.py, in class order."""
    time = partial(metric_names.metric_name, metric_names.TIME)
    metrics = {
        "accuracy": result.accuracy,
        "balanced_accuracy": result.balanced_accuracy,
        "f1_macro": result.f1_macro,
        metric_names.N_LABELED: result.n_labeled,
        "epochs": result.epochs,
        time("train_seconds"): result.train_seconds,
        time("score_seconds"): result.score_seconds,
        time("eval_seconds"): result.eval_seconds,
        time("round_seconds"): result.seconds,
    }
    if result.agreement is not None:  # the stopping criterion's agreement with the previous round
        metrics[metric_names.metric_name(metric_names.STOPPING, "kappa")] = result.agreement
    metrics.update(metric_names.per_class(metric_names.F1, classes, result.f1_per_class))
    metrics.update(metric_names.per_class(metric_names.QUERIED, classes, result.query_class_counts))
    return metrics


@patient("reading the rounds already logged")
def logged_steps(run_id: str, key: str = "accuracy") -> set[int]:
    return {m.step for m in MlflowClient().get_metric_history(run_id, key)}


def model_requirements() -> list[str]:
    """Pinned requirements for logged models; given explicitly, MLflow skips its slow inference."""
    pins = []
    for package in ("tensorflow-cpu", "tensorflow", "keras"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def model_name(round_: int) -> str:
    return f"round-{round_:03d}"


def model_signature(model) -> ModelSignature:
    """Images in (N x H x W x C float32 in [0, 1]), class probabilities out."""
    float32 = np.dtype(np.float32)
    return ModelSignature(
        inputs=Schema([TensorSpec(float32, (-1, *model.input_shape[1:]))]),
        outputs=Schema([TensorSpec(float32, (-1, model.output_shape[-1]))]),
    )


def log_model(model, name: str, step: int) -> str:
    """Log a Keras model at `step` into the active run; return its model id.

    Once per name and run: a model an earlier attempt logged in full is reused, and one it left
    half-uploaded (the store went away) is deleted before logging again."""
    run = mlflow.active_run().info
    client = MlflowClient()
    for earlier in mlflow.search_logged_models(
        experiment_ids=[run.experiment_id],
        output_format="list",
        filter_string=f"source_run_id = '{run.run_id}' AND name = '{name}'",
    ):
        if earlier.status == LoggedModelStatus.READY:
            return earlier.model_id
        client.delete_logged_model(earlier.model_id)
    info = mlflow.keras.log_model(
        model, name=name, step=step, signature=model_signature(model), pip_requirements=model_requirements()
    )
    return info.model_id


def log_round(result: RoundResult, classes: list[str], model=None) -> None:
    """Log a round's metrics at step=round; with a model, log it too and link the metrics to it.

    Waits out a store that is away (alstudy/tracking/outage.py). Sending a round again is harmless: its
    metrics carry one timestamp, taken before the first attempt, and MLflow keeps one copy of a metric sent
    twice with the same step, value and timestamp (a batch the server stored just before it died, its
    answer lost, is sent again as it was); the model is logged once (log_model)."""
    timestamp = int(time.time() * 1000)

    def log() -> None:
        model_id = log_model(model, model_name(result.round), result.round) if model is not None else None
        mlflow.log_metrics(round_metrics(result, classes), step=result.round, timestamp=timestamp, model_id=model_id)

    patiently(f"logging round {result.round}", log)


def labelling_run(experiment_id: str, project: str, live: bool = False) -> str:
    """The labelling project's one MLflow run (made on its first batch); each batch is a step of it. With
    `live`: the run of its live Label Studio loop (`label serve`), each round a step."""
    kind = "labelling-live" if live else "labelling"
    existing = mlflow.search_runs(
        [experiment_id], output_format="list", filter_string=(f"tags.kind = '{kind}' AND tags.project = '{project}'")
    )
    if existing:
        return existing[0].info.run_id
    name = f"label-{project}-live" if live else f"label-{project}"
    run = MlflowClient().create_run(experiment_id, run_name=name, tags={"kind": kind, "project": project})
    return run.info.run_id


def flat_params(prefix: str, section, exclude: set[str] = frozenset()) -> dict[str, object]:
    return {f"{prefix}.{key}": value for key, value in section.model_dump(exclude=exclude).items()}


def start_or_resume_run(experiment_id: str, name: str, run_id: str | None, tags: dict, params: dict):
    """Reopen the checkpoint's run, or start a new one named and tagged after the run's cell.

    A reopened run gets the tags again: its study's parent may be another run by now."""
    if run_id is not None:
        try:
            return mlflow.start_run(run_id=run_id, tags=tags)
        except mlflow.exceptions.MlflowException:
            pass  # deleted from the store meanwhile: start afresh
    run = mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags)
    mlflow.log_params(params)
    return run


def config_key(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def remove_unfinished_runs(experiment_id: str, name: str, config: str) -> list[str]:
    """Delete this cell's runs that a killed attempt left RUNNING, with the same config.

    A cell that starts over (its checkpoint is on another machine, or gone) would
    otherwise leave a second run with half its rounds beside the new one."""
    stale = mlflow.search_runs(
        [experiment_id],
        output_format="list",
        filter_string=(
            f"attributes.run_name = '{name}' AND attributes.status = 'RUNNING' AND tags.config = '{config}'"
        ),
    )
    client = MlflowClient()
    for run in stale:
        client.delete_run(run.info.run_id)
    return [run.info.run_id for run in stale]


@patient("replacing earlier runs of the cell")
def remove_superseded_runs(experiment_id: str, name: str, config: str, keep: str) -> list[str]:
    """Delete the cell's other runs of the same config once `keep` has finished: one run per cell and
    configuration in the store, also after `dvc repro -f` of a finished cell."""
    earlier = mlflow.search_runs(
        [experiment_id],
        output_format="list",
        filter_string=f"attributes.run_name = '{name}' AND tags.config = '{config}'",
    )
    client, removed = MlflowClient(), []
    for run in earlier:
        if run.info.run_id != keep:
            client.delete_run(run.info.run_id)
            removed.append(run.info.run_id)
    return removed


@contextmanager
def ending(run):
    """The block of a cell's run: the run ends FINISHED when the block completes (waiting out an outage),
    KILLED or FAILED when it does not. After an outage longer than the wait it is left as it is: the
    store is away, and the next attempt reopens it from the round checkpoint."""
    try:
        yield run
    except TrackingUnavailable:
        with contextlib.suppress(Exception):  # only takes it off MLflow's stack: the store is away
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    patiently("ending the run", MlflowClient().set_terminated, run.info.run_id, "FINISHED")
    with contextlib.suppress(Exception):  # takes it off MLflow's stack; the store has it FINISHED already
        mlflow.end_run()


@patient("logging the run's results")
def log_final(results_dir, metrics: dict) -> None:
    """The run's result files as artifacts, and its final metrics under final_*."""
    mlflow.log_artifacts(str(results_dir), artifact_path="results")
    mlflow.log_metrics({f"final_{key}": value for key, value in metrics.items()})
