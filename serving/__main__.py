"""``python -m serving`` runs the ``ringwatch`` CLI."""

from serving.cli import main

main()
