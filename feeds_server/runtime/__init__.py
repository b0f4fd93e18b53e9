"""Running the process: the objects it shares (services.py), its logs, metrics and graceful shutdown."""
