"""`python -m distributor` is the `distributor` console script."""

from distributor.cli import main

main()
