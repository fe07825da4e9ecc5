"""``python -m mlprod`` runs the command line."""

from mlprod.cli import main

main()
