"""The model registry: promotion only through the validation gate (its report stored with the version, who
and why recorded), and a registry that fails is an error, never "no champion" (which would promote every new
model)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from gnn.gate import GateReport
from gnn.tracking import (
    CHAMPION,
    REGISTERED_MODEL,
    TrackingError,
    champion_model_dir,
    champion_version,
    log_training_run,
    model_version,
    promote_version,
    read_gate,
    tracking_client,
)
from graph.settings import Settings


@pytest.fixture()
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / "data"))
    return Settings()


def _model_dir(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.json").write_text(f'{{"name": "{name}"}}', encoding="utf-8")
    return folder


def _report(version: str, passed: bool, champion) -> GateReport:
    return GateReport(
        model_version=version,
        champion_version=None if champion is None else f"{REGISTERED_MODEL}/{champion.version}",
        passed=passed,
        reasons=[] if passed else ["bot_farm: AUPRC 0.100 is more than 0.05 below the champion's 0.600"],
        labels="test",
        evaluated_accounts=10,
        threats={},
        bias={"overall": {"fpr": 0.01, "flagged_rate": 0.02}, "groups": {}, "failures": []},
        rules={},
    )


def _log(settings: Settings, tmp_path: Path, name: str, score: float, client=None, passed: bool | None = True):
    gate = None if passed is None else (lambda version, champion: _report(version, passed, champion))
    return log_training_run(
        settings,
        _model_dir(tmp_path, name),
        params={"epochs": 1},
        history=[{"epoch": 0, "loss": 0.5, "val_auprc_mean": score, "val_auprc": {"collusion": score}}],
        metrics={"val_auprc_mean": score},
        tags={"run": name},
        run_name=name,
        client=client,
        gate=gate,
    )


class FailingRegistry:
    """A real client whose registry reads fail as an unreachable server's would."""

    def __init__(self, client, fail_on: str) -> None:
        self._client, self._fail_on = client, fail_on

    def __getattr__(self, name: str):
        if name == self._fail_on:

            def fail(*args, **kwargs):
                raise ConnectionError("connection refused")

            return fail
        return getattr(self._client, name)


def test_only_a_model_that_passes_the_gate_becomes_champion_and_the_report_is_stored(local_settings, tmp_path):
    first = _log(local_settings, tmp_path, "train-a", 0.40)
    assert first.promoted and first.champion_score is None and first.version == "1" and first.gate == "passed"
    failed = _log(local_settings, tmp_path, "train-b", 0.90, passed=False)  # a better score does not matter
    assert not failed.promoted and "bot_farm: AUPRC" in failed.gate
    ungated = _log(local_settings, tmp_path, "train-c", 0.95, passed=None)
    assert not ungated.promoted
    passed = _log(local_settings, tmp_path, "train-d", 0.30, passed=True)  # a lower score that passes does
    assert passed.promoted and passed.version == "4"
    folder, version = champion_model_dir(local_settings, dest=tmp_path / "download")
    assert version == f"{REGISTERED_MODEL}/4"
    assert '"train-d"' in (folder / "model.json").read_text(encoding="utf-8")
    client = tracking_client(local_settings)
    stored = read_gate(client, "2")
    assert stored is not None and stored["passed"] is False and stored["reasons"][0].startswith("bot_farm")
    assert read_gate(client, "3") is None
    tags = client.get_model_version(REGISTERED_MODEL, "4").tags
    assert tags["gate"] == "passed" and tags["promoted_forced"] == "false"
    assert tags["promoted_from"] == f"{REGISTERED_MODEL}/1" and "train-d" in tags["promoted_reason"]
    metrics = client.get_run(client.get_model_version(REGISTERED_MODEL, "2").run_id).data.metrics
    assert metrics["gate_passed"] == 0.0 and metrics["gate_fpr_overall"] == pytest.approx(0.01)


def test_a_model_version_is_downloaded_once_into_the_data_folder(local_settings, tmp_path, monkeypatch):
    import mlflow.artifacts

    _log(local_settings, tmp_path, "train-a", 0.40)
    calls = []
    download = mlflow.artifacts.download_artifacts
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", lambda **kw: calls.append(kw) or download(**kw))
    folder, version = champion_model_dir(local_settings)
    again, _ = champion_model_dir(local_settings)
    assert version == f"{REGISTERED_MODEL}/1" and again == folder and len(calls) == 1
    registry = local_settings.data_dir.resolve() / "models" / "registry" / REGISTERED_MODEL
    assert folder.is_relative_to(registry / "1") and '"train-a"' in (folder / "model.json").read_text("utf-8")
    assert [p.name for p in registry.iterdir()] == ["1"]  # no partial download left beside it


def test_promote_version_records_who_and_why_and_model_version_names(local_settings, tmp_path):
    _log(local_settings, tmp_path, "train-a", 0.40)
    _log(local_settings, tmp_path, "train-b", 0.30, passed=False)
    client = tracking_client(local_settings)
    previous = promote_version(client, "2", by="alice", reason="forced for a test", forced=True)
    assert previous == "1"
    assert (
        str(model_version(client, CHAMPION).version)
        == "2"
        == str(model_version(client, f"{REGISTERED_MODEL}/2").version)
    )
    run = client.get_run(model_version(client, "2").run_id)
    assert run.data.tags["promoted_by"] == "alice" and run.data.tags["promoted_forced"] == "true"
    assert run.data.tags["promoted_reason"] == "forced for a test"
    with pytest.raises(TrackingError, match="no ringwatch-risk/9"):
        model_version(client, "9")
    with pytest.raises(TrackingError, match="names no model version"):
        model_version(client, "latest")


def test_no_champion_yet_is_a_clear_error(local_settings, tmp_path):
    with pytest.raises(TrackingError, match="run `ringwatch train` first"):
        champion_model_dir(local_settings, dest=tmp_path / "download")


def test_a_registry_that_fails_while_reading_the_champion_promotes_nothing(local_settings, tmp_path):
    _log(local_settings, tmp_path, "train-a", 0.40)
    client = tracking_client(local_settings)
    broken = FailingRegistry(client, "get_model_version")
    with pytest.raises(TrackingError, match="did not answer"):
        _log(local_settings, tmp_path, "train-b", 0.90, client=broken)
    # The better model was registered as version 2 but not promoted: the champion is still version 1.
    assert str(client.get_registered_model(REGISTERED_MODEL).aliases[CHAMPION]) == "1"
    with pytest.raises(TrackingError, match="did not answer"):
        champion_version(FailingRegistry(client, "get_registered_model"))


def test_an_unreachable_tracking_server_is_an_error_not_an_empty_registry(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"127.0.0.1:{port}.*did not answer"):
        champion_model_dir(settings, dest=tmp_path / "download")
    with pytest.raises(TrackingError, match=f"127.0.0.1:{port}"):
        _log(settings, tmp_path, "train-x", 0.9)
    assert time.monotonic() - started < 60
