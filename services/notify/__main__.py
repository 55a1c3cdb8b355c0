"""python -m services.notify: run this service alone (PARINDEX_* settings, --port)."""

from parindex.runtime.serve import main

if __name__ == "__main__":
    main("notify")
