"""The model registry: promotion only on a better score, and a registry that fails is an error, never "no
champion" (which would promote every new model)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from gnn.tracking import (
    CHAMPION,
    REGISTERED_MODEL,
    TrackingError,
    champion_model_dir,
    champion_version,
    log_training_run,
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


def _log(settings: Settings, tmp_path: Path, name: str, score: float, client=None):
    return log_training_run(
        settings,
        _model_dir(tmp_path, name),
        params={"epochs": 1},
        history=[{"epoch": 0, "loss": 0.5, "val_auprc_mean": score, "val_auprc": {"collusion": score}}],
        metrics={"val_auprc_mean": score},
        tags={"run": name},
        run_name=name,
        client=client,
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


def test_first_run_is_champion_then_only_a_better_one_replaces_it(local_settings, tmp_path):
    first = _log(local_settings, tmp_path, "train-a", 0.40)
    assert first.promoted and first.champion_score is None and first.version == "1"
    worse = _log(local_settings, tmp_path, "train-b", 0.30)
    assert not worse.promoted and worse.champion_score == pytest.approx(0.40)
    better = _log(local_settings, tmp_path, "train-c", 0.55)
    assert better.promoted and better.version == "3"
    folder, version = champion_model_dir(local_settings, dest=tmp_path / "download")
    assert version == f"{REGISTERED_MODEL}/3"
    assert '"train-c"' in (folder / "model.json").read_text(encoding="utf-8")


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
