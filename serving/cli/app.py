"""The ``ringwatch`` command line: the commands, readable errors, exit codes, and the process's one-time setup.

A command only parses its options, calls one typed entry point of its stage, and prints the result
(:mod:`serving.cli.show`); with ``--json`` standard output holds the JSON document alone and everything else
goes to standard error. :func:`main` sets up the process once: owner-only files (umask 077), logging
(:func:`graph.logs.configure_logging`) and the environment defaults of :func:`gnn.runtime.configure_process`.
"""

from __future__ import annotations

import os
import sys

import click
import neo4j
import typer
from typer.exceptions import TyperException

from gnn.runtime import configure_process
from graph.errors import RingwatchError
from graph.logs import SHOWN, configure_logging, logger
from graph.private_files import PRIVATE_UMASK
from graph.settings import Settings, load_settings
from serving.cli import investigation, online, operations, pipeline, research, server
from serving.cli.console import err_console, safe

log = logger(__name__)

app = typer.Typer(
    name="ringwatch",
    help="Graph-based fraud-ring detection: exchange events → Neo4j graph → risk scores → rings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
neo4j_app = typer.Typer(
    help="Run the local Neo4j server (ignored when NEO4J_URI points at your own).", no_args_is_help=True
)
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(research.research_app, name="research")
neo4j_app.command("start")(server.start)
neo4j_app.command("stop")(server.stop)
neo4j_app.command("status")(server.status)
for command in (
    pipeline.generate,
    pipeline.ingest,
    pipeline.snapshot,
    pipeline.train,
    pipeline.evaluate,
    pipeline.score,
    pipeline.promote,
    pipeline.rings,
    investigation.investigate,
    investigation.verdict,
):
    app.command()(command)
app.command("query-pack")(investigation.query_pack)
app.command()(investigation.report)
app.command()(investigation.erase)
app.command()(pipeline.demo)
app.command()(operations.monitor)
app.command()(operations.dashboard)
app.command()(online.serve)


def _set_up_process() -> Settings | None:
    """Owner-only files, logging and environment defaults; the settings (None when they are invalid: the
    command then reports that itself)."""
    os.umask(PRIVATE_UMASK)
    configure_process()
    try:
        settings = load_settings()
    except RingwatchError:  # invalid settings: the command reports them itself, as one readable error
        return None
    try:
        configure_logging(settings)
    except OSError as e:  # an unwritable data folder must not hide the command's own error
        err_console.print(f"[yellow]warning:[/yellow] no log file ({safe(e)})")
    return settings


def main() -> None:
    """Entry point: readable errors and exit codes instead of tracebacks.

    Files the commands create are owner-only (umask 077): reject files, snapshots, models, reports, logs and
    the local server's store all hold users' data.
    """
    settings = _set_up_process()
    debug = bool(settings and settings.debug)
    try:
        code = app(standalone_mode=False)
    except RingwatchError as e:
        log.error("%s", e, exc_info=debug, extra=SHOWN)
        err_console.print(f"[bold red]error:[/bold red] {safe(e)}")
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (click.ClickException, TyperException) as e:
        # typer bundles its own click: its usage errors are TyperExceptions, not click's ClickException.
        show = getattr(e, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(e, "exit_code", 2))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun the same command to resume")
        sys.exit(130)
    except neo4j.exceptions.Neo4jError as e:
        log.error("Neo4j error %s: %s", e.code, e.message, extra=SHOWN)
        err_console.print(f"[bold red]Neo4j error:[/bold red] {safe(e.message)} ({safe(e.code)})")
        sys.exit(1)
    except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired) as e:
        log.error("Neo4j unavailable: %s", e, extra=SHOWN)
        err_console.print(f"[bold red]Neo4j unavailable:[/bold red] {safe(e)}")
        sys.exit(1)
    except Exception as e:  # a bug, not a user error: still one readable line, traceback on request
        log.critical("unexpected error", exc_info=True, extra=SHOWN)
        if debug:
            raise
        err_console.print(
            f"[bold red]unexpected error[/bold red] ({type(e).__name__}): {safe(e)}\n"
            "rerun with RINGWATCH_DEBUG=1 for the traceback, and please report it"
        )
        sys.exit(2)
    # Without standalone mode, click returns a command's exit code (typer.Exit) instead of exiting with it.
    if isinstance(code, int) and code:
        sys.exit(code)
