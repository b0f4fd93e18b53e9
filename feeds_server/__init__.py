"""feeds_server: real-time collaboration feeds for CRMs."""

__version__ = "0.1.0"
