"""Logging: JSON lines with run ids in an owner-only file, escaped readable lines on standard error, run ids in
one format."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

import pytest

from graph.logs import SHOWN, configure_logging, logger
from graph.runs import current_run, new_run_id, run_scope
from graph.settings import Settings


@pytest.fixture()
def configured(tmp_path, monkeypatch):
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RINGWATCH_LOG_LEVEL", "info")
    path = configure_logging(Settings())
    yield path
    root = logging.getLogger("ringwatch")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def test_records_carry_the_run_id_and_extra_fields(configured, capsys):
    log = logger("gnn.example")
    log.info("outside any run")
    with run_scope("score-20261207T000000-abcdef"):
        log.info("scored %d accounts", 12, extra={"flagged": 3})
        log.warning("evil \x1b[31mred\u202e text")
        log.error("already shown by the command line", extra=SHOWN)
    assert current_run() is None
    records = [json.loads(line) for line in configured.read_text(encoding="utf-8").splitlines()]
    assert [r["run_id"] for r in records] == [None, *["score-20261207T000000-abcdef"] * 3]
    assert records[1]["message"] == "scored 12 accounts" and records[1]["flagged"] == 3
    assert records[1]["logger"] == "ringwatch.gnn.example" and records[1]["level"] == "INFO"
    assert records[2]["message"] == "evil \x1b[31mred\u202e text"  # the file keeps the text exact (JSON-escaped)
    assert "shown" not in records[3]
    assert configured.stat().st_mode & 0o777 == 0o600 and configured.parent.stat().st_mode & 0o777 == 0o700
    err = capsys.readouterr().err
    assert "INFO ringwatch.gnn.example [score-20261207T000000-abcdef] scored 12 accounts" in err
    assert "evil \\x1b[31mred\\u202e text" in err and "\x1b" not in err  # escaped for the terminal
    assert "already shown" not in err


def test_configuring_twice_keeps_one_pair_of_handlers(configured, tmp_path):
    configure_logging(Settings())
    assert len(logging.getLogger("ringwatch").handlers) == 2


def test_run_ids_have_one_format():
    at = datetime(2026, 12, 7, 2, 48, 9, tzinfo=UTC)
    run_id = new_run_id("ingest", at)
    assert re.fullmatch(r"ingest-20261207T024809-[0-9a-f]{6}", run_id)
    assert new_run_id("ingest", at) != run_id
    with pytest.raises(ValueError, match="job must be"):
        new_run_id("Bad Job")


def test_debug_and_log_level_come_from_settings(monkeypatch):
    monkeypatch.setenv("RINGWATCH_DEBUG", "")
    assert Settings().debug is False
    monkeypatch.setenv("RINGWATCH_DEBUG", "1")
    assert Settings().debug is True
    monkeypatch.setenv("RINGWATCH_LOG_LEVEL", "loud")
    with pytest.raises(ValueError, match="RINGWATCH_LOG_LEVEL"):
        Settings()


def test_the_log_file_is_created_with_the_first_record_only(tmp_path, monkeypatch):
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / "data"))
    path = configure_logging(Settings())
    try:
        assert not (tmp_path / "data").exists()  # `ringwatch --help` leaves nothing behind
        logger("serving.example").info("first")
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        for handler in list(logging.getLogger("ringwatch").handlers):
            logging.getLogger("ringwatch").removeHandler(handler)
            handler.close()
