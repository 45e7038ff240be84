"""`python -m fallback` is the `fallback` command."""

from fallback.cli import main

main()
