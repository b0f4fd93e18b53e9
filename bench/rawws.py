"""The physical limit for bench/realtime.py: a bare `websockets` server that broadcasts.

    python bench/rawws.py PORT

Speaks just enough of the Centrifuge protocol for bench/wsclients.py: answers the first frame with
a connect reply and keeps the socket in one set. A connection to `/publish` is the publisher: each
text message it sends is the `data` of one publication, wrapped as
`{"push":{"channel":"org","pub":{"data":...,"offset":N}}}` and handed to `websockets.broadcast`
(one encoding, written to every socket without waiting). No compression, no pings.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from websockets.asyncio.server import ServerConnection, broadcast, serve

CONNS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path == "/publish":
        seq = 0
        async for message in ws:
            seq += 1
            data = message if isinstance(message, str) else message.decode()
            broadcast(CONNS, '{"push":{"channel":"org","pub":{"data":' + data + ',"offset":' + str(seq) + "}}}")
        return
    await ws.recv()  # the connect command
    await ws.send('{"id":1,"connect":{"client":"' + uuid.uuid4().hex + '","version":"raw","ping":25,"pong":true}}')
    CONNS.add(ws)
    try:
        async for _ in ws:
            pass
    finally:
        CONNS.discard(ws)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=2**16, backlog=4096):
        print("READY", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
