"""The command line's error paths and output contract, without a database: ranges match the library's, a
library's argument error is a usage error, typed errors are one readable line, ``--json`` is JSON alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph.errors import ModelError
from ingest.synthetic import MIN_ACCOUNTS


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NEO4J_URI", raising=False)
    return tmp_path / "data"


@pytest.mark.parametrize("command", ["generate", "demo"])
def test_too_few_accounts_is_a_usage_error_at_the_library_minimum(run_cli, data_dir, tmp_path, command):
    code, out, err = run_cli(command, "--accounts", str(MIN_ACCOUNTS - 1), "--out", str(tmp_path / "x"))
    assert code == 2, out + err
    assert f"greater than or equal to {MIN_ACCOUNTS}" in err and "unexpected error" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["generate", "--out", "x", "--format", "xls"], "--format must be one of parquet, csv"),
        (["score", "--fpr-target", "0.01", "--budget", "5"], "budget"),
        (["train", "--snapshot", "x", "--sampling", "sideways"], "sampling must be 'neighbor' or 'full'"),
        (["rings", "--min-size", "1"], "greater than or equal to 2"),
    ],
)
def test_a_library_argument_error_is_a_usage_error(run_cli, data_dir, args, says):
    code, out, err = run_cli(*args)
    assert code == 2, out + err
    assert says in err and "unexpected error" not in err


def test_a_typed_error_is_one_readable_line_and_logged(run_cli, data_dir, monkeypatch):
    import serving.cli.pipeline as pipeline

    def no_checkpoint(*args, **kwargs):
        raise ModelError("Ray Train run train-x produced no checkpoint (every attempt failed): boom")

    monkeypatch.setattr("gnn.training_job.train_on_snapshot", no_checkpoint)
    monkeypatch.setattr(pipeline, "_snapshot_or_fresh", lambda settings, snapshot, out: Path("snap"))
    code, out, err = run_cli("train", "--snapshot", "snap", "--no-ray")
    assert code == 1 and err.startswith("error: Ray Train run train-x produced no checkpoint")
    assert "unexpected error" not in err
    logged = [json.loads(line) for line in (data_dir / "logs" / "ringwatch.jsonl").read_text().splitlines()]
    assert any(r["level"] == "ERROR" and "produced no checkpoint" in r["message"] for r in logged)


def test_ray_training_without_a_checkpoint_is_a_model_error(monkeypatch, tmp_path):
    """Every attempt failed: a typed error (shown as one line), not a RuntimeError (shown as a bug)."""
    import ray.train.torch

    from gnn.ray_train import RayConfig, fit_with_ray
    from gnn.split import TimeSplit
    from gnn.train import TrainConfig

    class FailedResult:
        checkpoint = None
        error = RuntimeError("worker died")

    class Trainer:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self):
            return FailedResult()

    monkeypatch.setattr(ray.train.torch, "TorchTrainer", Trainer)
    monkeypatch.setattr("gnn.ray_train.init_ray", lambda address: None)
    split = TimeSplit(train_end=1, val_end=2, train_share=0.7, val_share=0.15)
    with pytest.raises(ModelError, match="produced no checkpoint .*worker died"):
        fit_with_ray(tmp_path, split, TrainConfig(), RayConfig(storage_path=tmp_path / "ray"), "train-test")


def test_ray_data_scoring_that_misses_accounts_is_a_model_error(monkeypatch, tmp_path):
    import numpy as np

    from gnn import batch_inference

    def half(model_dir, snapshot_dir, num_accounts, config=None):
        yield {"position": np.arange(2), **{t: np.full(2, 0.5) for t in ("collusion", "promo_abuse", "bot_farm")}}

    monkeypatch.setattr(batch_inference, "iter_scores", half)
    with pytest.raises(ModelError, match="no score for 3 of 5 accounts"):
        batch_inference.main(tmp_path, tmp_path, 5)


def test_train_and_evaluate_json_is_json_alone_on_stdout(run_cli, data_dir, small_snapshot, tmp_path):
    code, out, err = run_cli(
        "train", "--snapshot", str(small_snapshot), "--no-ray", "--epochs", "1", "--hidden", "8", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)  # all of standard output is one JSON document
    assert summary["trainer"] == "plain" and summary["tracking"]["promoted"] is True
    assert "validation AUPRC and the shipped choice" in err  # the table went to standard error
    code, out, err = run_cli("evaluate", "--model", summary["model_dir"], "--snapshot", str(small_snapshot), "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert set(metrics["threats"]) == {"collusion", "promo_abuse", "bot_farm"} and "AUPRC" in err


def test_logging_goes_to_the_data_folder_with_run_ids(run_cli, data_dir, small_snapshot):
    code, _, err = run_cli("train", "--snapshot", str(small_snapshot), "--no-ray", "--epochs", "1", "--hidden", "8")
    assert code == 0, err
    log_file = data_dir / "logs" / "ringwatch.jsonl"
    assert log_file.stat().st_mode & 0o777 == 0o600
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    training = [r for r in records if r["logger"].startswith("ringwatch.gnn")]
    assert training and all(r["run_id"] and r["run_id"].startswith("train-") for r in training)
    assert any(r["message"].startswith("epoch 0:") for r in training)
    assert "INFO ringwatch" not in err  # standard error shows ringwatch's warnings and errors only, by default


def test_an_invalid_setting_is_one_readable_error(run_cli, data_dir, monkeypatch):
    monkeypatch.setenv("RINGWATCH_LOG_LEVEL", "loud")
    code, _, err = run_cli("investigate", "a")
    assert code == 1 and err.startswith("error: invalid settings: RINGWATCH_LOG_LEVEL")
