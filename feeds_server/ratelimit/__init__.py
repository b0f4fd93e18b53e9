"""Rate limits: the limiter interface (limiter.py) beside its in-process and Redis backends, chosen by the settings."""
