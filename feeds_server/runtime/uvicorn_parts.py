"""Everything this server takes from uvicorn beyond its public `Config` and `Server`, in one place.

Two protocols extend uvicorn's own: `api/http_wire.py` bounds each HTTP connection in bytes and time
(httptools), and `realtime/wire.py` writes shared WebSocket frames and answers plain upgrades itself
(websockets-sansio); `runtime/shutdown.py` drains the node before uvicorn's own shutdown. They use
classes, methods and per-connection attributes that uvicorn does not promise to keep. They import
them from here only, and `UVICORN_CONTRACT` names each thing they rely on, so that
`check_contract()` (run by tests/unit/test_uvicorn_contract.py) fails with a clear message when an
upgrade of uvicorn moves or renames one, instead of a connection failing at run time.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

__all__ = [
    "STATUS_LINE", "ClientDisconnected", "HttpToolsProtocol", "RequestResponseCycle", "WebSocketsSansIOProtocol",
    "check_contract", "get_client_addr", "get_path_with_query_string",
]

# What each of our subclasses calls or reads: methods (callables of the class) and attributes (set on
# an instance by uvicorn once it has a transport).
UVICORN_CONTRACT: dict[str, dict[str, tuple[str, ...]]] = {
    "HttpToolsProtocol": {
        "methods": (
            "connection_made", "connection_lost", "data_received", "handle_websocket_upgrade", "send_400_response",
            "on_message_begin", "on_headers_complete", "on_message_complete", "_should_upgrade",
        ),
        "attributes": ("parser", "loop", "transport", "cycle", "url", "headers"),
    },
    "RequestResponseCycle": {
        "attributes": ("response_started", "response_complete", "disconnected", "message_event"),
    },
    "WebSocketsSansIOProtocol": {
        "methods": (
            "data_received", "send", "connection_lost", "pause_writing", "resume_writing", "handle_connect",
            "run_asgi", "on_task_complete", "start_keepalive",
        ),
        "attributes": (
            "config", "conn", "loop", "queue", "tasks", "writable", "transport", "scheme", "server", "client",
            "root_path", "asgi_version", "app_state", "default_headers", "logger", "handshake_initiated",
            "handshake_complete", "close_sent", "disconnected", "read_paused", "close_timeout",
        ),
    },
    # `servers` is set by `startup`, so it is looked for in that method's source.
    "Server": {"methods": ("shutdown", "handle_exit", "startup"), "attributes": ("config",), "startup sets": ("self.servers",)},
}


class _Transport(asyncio.Transport):
    """Enough of a socket for uvicorn's protocols to set up their per-connection state."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    return None


def check_contract() -> list[str]:
    """What of `UVICORN_CONTRACT` the installed uvicorn lacks (empty when all is there). Needs a
    running event loop (the protocols take it at creation)."""
    missing: list[str] = []
    config = Config(_noop_app, log_config=None)
    config.load()
    state = ServerState()
    http = HttpToolsProtocol(config, state, {})
    http.connection_made(_Transport())
    http.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
    ws = WebSocketsSansIOProtocol(config, state, {})
    ws.connection_made(_Transport())
    server = uvicorn.Server(config)
    startup = inspect.getsource(uvicorn.Server.startup)
    missing += [f"uvicorn Server.startup no longer sets {name}" for name in UVICORN_CONTRACT["Server"]["startup sets"] if name not in startup]
    instances = {"HttpToolsProtocol": http, "RequestResponseCycle": http.cycle, "WebSocketsSansIOProtocol": ws, "Server": server}
    for name, wanted in UVICORN_CONTRACT.items():
        instance = instances[name]
        for method in wanted.get("methods", ()):
            if not callable(getattr(type(instance), method, None)):
                missing.append(f"uvicorn {name}.{method}() is gone")
        for attribute in wanted.get("attributes", ()):
            if not hasattr(instance, attribute):
                missing.append(f"uvicorn {name}.{attribute} is gone")
    for task in list(state.tasks):
        task.cancel()
    return missing
