"""The abuse suite drives real nodes like tests/realtime does."""

from tests.realtime.conftest import node, node_env  # noqa: F401 - fixtures shared with tests/realtime
