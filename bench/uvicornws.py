"""The framework's own cost for bench/connects.py: uvicorn, with the WebSocket protocol
`feeds-server serve` runs (realtime/wire.py) and its garbage-collector settings, serving an ASGI
app that only answers the connect command — no token, no database, no hub.

    python bench/uvicornws.py PORT
"""

from __future__ import annotations

import gc
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402

from feeds_server.realtime.wire import WireProtocol  # noqa: E402


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await receive()  # the connect command
    await send({"type": "websocket.send", "text": '{"id":1,"connect":{"client":"' + uuid.uuid4().hex + '","version":"bare","ping":25,"pong":true}}'})
    while (await receive())["type"] != "websocket.disconnect":
        pass


if __name__ == "__main__":
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), ws=WireProtocol, ws_ping_interval=None,
                            log_level="warning", access_log=False, log_config=None, server_header=False)
    server = uvicorn.Server(config)
    print("READY", flush=True)
    server.run()
