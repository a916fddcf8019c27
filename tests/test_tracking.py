"""Where the MLflow store resolves to, including from DVC's temporary experiment copies."""

from pipeline import tracking
from pipeline.loop import RoundResult
from pipeline.params import BaseParams
from pipeline.paths import project_root


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
    result = RoundResult(round=2, n_labeled=40, accuracy=0.5, balanced_accuracy=0.45, f1_macro=0.4,
                         f1_per_class=[0.1] * 10,
                         query_class_counts=[1] * 10, epochs=3, train_seconds=1.0, score_seconds=0.5,
                         eval_seconds=0.25)
    metrics = tracking.round_metrics(result)
    assert {"accuracy", "balanced_accuracy", "f1_macro", "n_labeled", "round_seconds", "f1_class_9",
            "queried_class_0"} <= set(metrics)
    assert metrics["round_seconds"] == 1.75 and metrics["n_labeled"] == 40
