"""``python -m geoduck``: the ``geoduck`` command line."""

from .cli import run

if __name__ == "__main__":
    run()
