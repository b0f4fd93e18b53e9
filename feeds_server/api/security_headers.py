"""Headers every HTTP answer of the node carries, whatever route made it (API, web client, errors).

The web client's pages add their Content-Security-Policy on top (api/web.py). HSTS is sent only when
the node is reached over TLS (`FEEDS_PUBLIC_URL` starts with https://): over plain HTTP a browser
ignores it, and a development server on localhost must not pin itself to HTTPS.
"""

from __future__ import annotations

from starlette.types import Message, Send

from feeds_server.config import Settings

HSTS_SECONDS = 365 * 24 * 3600


def header_list(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
    if settings.public_url.startswith("https://"):
        headers.append((b"strict-transport-security", f"max-age={HSTS_SECONDS}; includeSubDomains".encode()))
    return headers


def adding(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send`, adding `extra` to the response's headers where the response does not set them."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            message["headers"] = headers + [h for h in extra if h[0] not in present]
        await send(message)

    return send_with_headers
