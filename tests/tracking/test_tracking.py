"""Where the MLflow store resolves to (including from DVC's temporary experiment copies), and the names
of what each run logs."""

import json

import mlflow
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import _validate_metric_name

from alstudy.learning.loop import RoundResult
from alstudy.params import BaseParams
from alstudy.paths import project_root
from alstudy.tracking import metric_names
from alstudy.tracking import runs as tracking


def test_project_root_climbs_out_of_dvc_experiment_copies(tmp_path):
    copy = tmp_path / "study" / ".dvc" / "tmp" / "exps" / "tmp8x2k" / "sub"
    copy.mkdir(parents=True)
    assert project_root(copy) == (tmp_path / "study").resolve()
    assert project_root(tmp_path) == tmp_path.resolve()


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(BaseParams()) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking.tracking_uri(BaseParams(mlflow_tracking_uri="http://127.0.0.1:5000")) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    assert tracking.tracking_uri(BaseParams(mlflow_tracking_uri="http://127.0.0.1:5000")) == "sqlite:////elsewhere/m.db"


def test_round_metric_names_are_stable():
    result = RoundResult(
        round=2,
        n_labeled=40,
        accuracy=0.5,
        balanced_accuracy=0.45,
        f1_macro=0.4,
        f1_per_class=[0.1, 0.2, 0.3],
        query_class_counts=[1, 2, 3],
        epochs=3,
        train_seconds=1.0,
        score_seconds=0.5,
        eval_seconds=0.25,
    )
    metrics = tracking.round_metrics(result, ["bolt", "gear", "nut"])
    assert set(metrics) == {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "n_labeled",
        "epochs",
        "time/train_seconds",
        "time/score_seconds",
        "time/eval_seconds",
        "time/round_seconds",
        "f1/bolt",
        "f1/gear",
        "f1/nut",
        "queried/bolt",
        "queried/gear",
        "queried/nut",
    }
    assert metrics["time/round_seconds"] == 1.75 and metrics["n_labeled"] == 40
    # Each name carries its own value (every score differs here, so a swapped value cannot pass).
    assert (metrics["accuracy"], metrics["balanced_accuracy"], metrics["f1_macro"]) == (0.5, 0.45, 0.4)
    assert metrics["epochs"] == 3 and metrics["time/train_seconds"] == 1.0 and metrics["time/eval_seconds"] == 0.25
    assert metrics["time/score_seconds"] == 0.5 and metrics["f1/bolt"] == 0.1 and metrics["queried/nut"] == 3
    assert metrics["f1/nut"] == 0.3 and metrics["queried/gear"] == 2


def test_class_keys_are_names_mlflow_stores_and_each_class_keeps_its_own():
    names = ["T-shirt/top", "Ankle boot", "Café", "日本", "ankle-boot", "Ankle boot", ""]
    keys = metric_names.class_keys(names)
    assert keys == ["t_shirt_top", "ankle_boot", "cafe", "class_3", "ankle_boot_4", "ankle_boot_5", "class_6"]
    for key in keys:  # MLflow's own check, as log_metric applies it
        _validate_metric_name(metric_names.metric_name(metric_names.F1, key))
    assert json.loads(metric_names.class_tags(names)["class_keys"]) == dict(zip(keys, names))
    assert metric_names.class_keys([], 2) == ["class_0", "class_1"]  # data without class names


def test_class_keys_are_logged_as_the_round_metrics_name_them(tmp_path, monkeypatch):
    """The real logging path on a hand-made round: what MLflow stores is what round_metrics names."""
    monkeypatch.chdir(tmp_path)  # the default experiment's artifacts, if any, land here
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    names = ["T-shirt/top", "Ankle boot"]
    result = RoundResult(
        round=0,
        n_labeled=10,
        accuracy=0.5,
        balanced_accuracy=0.5,
        f1_macro=0.5,
        f1_per_class=[0.25, 0.75],
        query_class_counts=[4, 6],
        epochs=1,
        train_seconds=1.0,
        score_seconds=0.0,
        eval_seconds=0.1,
    )
    with mlflow.start_run(tags=metric_names.class_tags(names)) as run:
        tracking.log_round(result, metric_names.class_keys(names))
    stored = MlflowClient().get_run(run.info.run_id)
    assert stored.data.metrics["f1/ankle_boot"] == 0.75 and stored.data.metrics["queried/t_shirt_top"] == 4
    assert json.loads(stored.data.tags["class_keys"]) == {"t_shirt_top": "T-shirt/top", "ankle_boot": "Ankle boot"}


def test_the_chart_view_is_on_the_server_or_on_mlflow_uis_address():
    assert (
        tracking.chart_view_url("3", "sqlite:////x/mlflow.db")
        == "http://127.0.0.1:5000/#/experiments/3/runs?compareRunsMode=CHART"
    )
    assert (
        tracking.chart_view_url("7", "http://tracking.lab:5000/")
        == "http://tracking.lab:5000/#/experiments/7/runs?compareRunsMode=CHART"
    )
