"""The ``ringwatch`` command line (see :mod:`serving.cli.app`): a thin layer over each stage's entry point."""

from serving.cli.app import app, main

__all__ = ["app", "main"]
