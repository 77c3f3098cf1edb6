"""`python -m distrokit` runs the command-line interface."""

from distrokit.cli import run

if __name__ == "__main__":
    run()
