"""`python -m fallback` is the `fallback` command."""

from .cli import main

main()
