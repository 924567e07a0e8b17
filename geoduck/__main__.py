"""``python -m geoduck``: the ``geoduck`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
