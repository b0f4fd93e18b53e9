"""Use cases, one transaction each. The only code that appends events (store/events.py)."""
