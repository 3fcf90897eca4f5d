"""`python -m minitune ...` is the same as the `minitune` command."""

from minitune.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
