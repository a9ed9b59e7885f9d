"""What the commands print is data shown as text: rich markup and terminal escape sequences from ids,
fingerprints, notes and paths never style, move, clear or break the terminal, and never crash a command.
Also the exit codes and messages a user relies on (status, stop, bad truth file, wrong password, --json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gnn.build import risk_graph_from_neo4j
from graph import schema as s
from serving.score import plan_from_scores, write_scores
from tests.conftest import wipe

MARKUP = "[/x]"
ESCAPES = ("\x1b[2J", "\x1b]0;pwned\x07", "\u202e")  # clear screen, set window title, right-to-left override
MEMBERS = ["acc[/x]", "acc\x1b[2J", "[bold red]acc[/]", "acc\x1b]0;pwned\x07", "acc\u202eevil"]
FINGERPRINT = "fp[/x]\x1b[31m"


def flat(out: str) -> str:
    """What a command printed without line breaks, table borders and spaces: rich wraps a long path (the
    temporary folder's name depends on the machine) over lines and pads the pieces, which is layout, not text."""
    return out.replace("\n", "").replace("│", "").replace(" ", "")


def write_hostile_folder(folder: Path) -> None:
    folder.mkdir(parents=True)
    n = len(MEMBERS)
    pd.DataFrame(
        {
            "account_id": MEMBERS,
            "created_at": ["2026-01-01T00:00:00Z"] * n,
            "email": [None] * n,
            "phone": [None] * n,
            "country": ["DE"] * n,
            "kyc_level": ["1"] * n,
            "referrer_id": [None] * n,
            "signup_ip": ["192.0.2.9"] * n,
            "signup_device_id": [FINGERPRINT] * n,
        }
    ).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame(
        {
            "ts": ["2026-01-02T00:00:00Z"] * n,
            "from_account_id": MEMBERS,
            "to_account_id": MEMBERS[1:] + MEMBERS[:1],
            "asset": ["BTC"] * n,
            "amount": ["1"] * n,
        },
    ).to_csv(folder / "transfers.csv", index=False)
    pd.DataFrame(
        {
            "account_id": MEMBERS[:2],
            "label": ["collusion"] * 2,
            "source": ["[/x]\x1b[2J"] * 2,
            "ts": ["2026-01-03T00:00:00Z"] * 2,
        }
    ).to_csv(folder / "labels.csv", index=False)


def test_markup_and_escape_sequences_pass_through_every_command_as_text(run_cli, empty_graph, graph_env, tmp_path):
    folder = tmp_path / f"in{MARKUP}{ESCAPES[0]}"
    write_hostile_folder(folder)
    code, out, _ = run_cli("ingest", str(folder), "--rejects", str(tmp_path / "rejects"))
    assert code == 0 and "in[/x]\\x1b[2J" in flat(out)

    graph = risk_graph_from_neo4j(empty_graph, "neo4j")
    scores = np.full((graph.num_accounts, len(s.THREATS)), 0.05)
    scores[:, 0] = 0.9
    labels = np.array([s.COLLUSION] * graph.num_accounts, dtype=object)
    run, plan = plan_from_scores(
        graph, scores, labels, "rule/1", thresholds={t: 0.5 for t in s.THREATS}, train_end=None
    )
    write_scores(empty_graph, "neo4j", run, plan)

    code, out, _ = run_cli("rings")
    assert code == 0 and "1 rings (5 members" in out  # its evidence names kinds of identifiers, not their values
    code, out, _ = run_cli("investigate", MEMBERS[0])
    assert code == 0
    shown_text = flat(out)
    for member in MEMBERS:
        shown = member.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\u202e", "\\u202e")
        assert shown.replace(" ", "") in shown_text, shown  # every member shown, escapes visible as text
    assert "fp[/x]\\x1b[31m" in shown_text
    code, out, _ = run_cli("investigate", "--json", MEMBERS[1])
    assert code == 0 and json.loads(out)["account_id"] == MEMBERS[1]  # JSON keeps the data exact
    code, out, _ = run_cli("verdict", MEMBERS[0], "confirmed", "--note", f"{MARKUP}{ESCAPES[0]}")
    assert code == 0 and "recorded confirmed for acc[/x]" in out
    code, _, err = run_cli("investigate", f"nobody{MARKUP}{ESCAPES[1]}")
    assert code == 1 and "no account 'nobody[/x]\\x1b]0;pwned\\x07'" in err
    code, out, _ = run_cli("query-pack", "--out", str(tmp_path / f"pack{MARKUP}{ESCAPES[2]}"))
    assert code == 0 and "pack[/x]\\u202e" in flat(out)


def test_generate_into_a_hostile_path(run_cli, tmp_path):
    code, out, _ = run_cli(
        "generate", "--accounts", "500", "--format", "csv", "--out", str(tmp_path / f"out{MARKUP}{ESCAPES[0]}")
    )
    assert code == 0 and "out[/x]\\x1b[2J" in flat(out)


def test_ingest_json_writes_only_the_report_to_stdout(run_cli, empty_graph, graph_env, tmp_path):
    write_hostile_folder(tmp_path / "x")
    code, out, err = run_cli("ingest", str(tmp_path / "x"), "--rejects", str(tmp_path / "rejects"), "--json")
    assert code == 0
    report = json.loads(out)  # all of stdout is one JSON document
    assert report["quality"]["tables"]["accounts"]["accepted"] == len(MEMBERS)
    assert "ingested" in err and "ingested" not in out  # the human summary went to stderr


def test_status_and_stop_of_a_local_server_that_is_not_running(run_cli, monkeypatch, tmp_path):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    monkeypatch.setenv("RINGWATCH_DATA_DIR", str(tmp_path / f"data{MARKUP}{ESCAPES[0]}"))
    code, out, _ = run_cli("neo4j", "status")
    assert code == 3 and "state:    stopped" in out and "data[/x]\\x1b[2J" in out
    assert "password: not created yet" in out
    code, out, _ = run_cli("neo4j", "stop")
    assert code == 0 and "was not running; nothing to stop" in out and "Neo4j stopped." not in out


def test_stop_with_an_external_server_says_it_stops_nothing(run_cli, monkeypatch):
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:1")
    code, out, err = run_cli("neo4j", "stop")
    assert code == 1 and "does not stop a server then" in err and "stopped." not in out


def test_a_bad_truth_file_is_a_readable_error(run_cli, graph_env, tmp_path):
    (tmp_path / "truth.csv").write_bytes(b"")
    code, _, err = run_cli("evaluate", "--truth", str(tmp_path / "truth.csv"))
    assert code == 1 and "is not a readable CSV file" in err and "unexpected error" not in err
    code, _, err = run_cli("evaluate", "--truth", str(tmp_path / "missing.csv"))
    assert code == 1 and "does not exist" in err


def test_a_wrong_password_gets_advice_that_keeps_the_data(run_cli, graph_env, monkeypatch):
    monkeypatch.setenv("NEO4J_PASSWORD", "wrong-password-123")
    code, _, err = run_cli("investigate", "a")
    assert code == 1 and "refused the credentials" in err and "NEO4J_PASSWORD" in err
    assert "delete" not in err.lower()


def test_rejected_rows_name_no_terminal_markup_problem(run_cli, empty_graph, graph_env, tmp_path):
    """A reject reason is printed in the ingest summary; the row it names is data, the reason is ours."""
    folder = tmp_path / "x"
    write_hostile_folder(folder)
    pd.DataFrame(
        {
            "ts": ["not a time"],
            "from_account_id": [f"{MARKUP}{ESCAPES[0]}"],
            "to_account_id": ["b"],
            "asset": ["BTC"],
            "amount": ["1"],
        }
    ).to_csv(folder / "transfers.csv", index=False)
    code, out, _ = run_cli("ingest", str(folder), "--rejects", str(tmp_path / "rejects"))
    assert code == 0 and "ts: must be an ISO-8601 timestamp with a time zone" in out
    wipe(empty_graph)
