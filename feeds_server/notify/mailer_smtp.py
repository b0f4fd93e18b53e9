"""Mail sent through an SMTP server with aiosmtplib (TLS and auth from the settings).

Connections are kept open and reused (a small pool), so a busy worker does not pay a TCP and TLS
handshake per email. A connection that fails is dropped; the error goes to the caller, who decides
whether to retry.
"""

from __future__ import annotations

import asyncio
from email.message import Message
from email.utils import parseaddr

import aiosmtplib

from feeds_server.config import Settings

POOL_SIZE = 8


def _address(header: str) -> str:
    return parseaddr(str(header))[1]


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(POOL_SIZE)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=True if s.smtp_tls == "starttls" else False,
            timeout=30,
        )
        await client.connect()
        if s.smtp_user:
            await client.login(s.smtp_user, s.smtp_password)
        return client

    async def send(self, message: Message) -> None:
        async with self._slots:
            client = self._idle.pop() if self._idle else await self._connect()
            try:
                if not client.is_connected:
                    client = await self._connect()
                # compat32 flattening, with CRLF as SMTP wants: several times cheaper than the
                # policy-based generator send_message uses, and the same message on the wire.
                raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                await client.sendmail(_address(message["From"]), [_address(message["To"])], raw)
            except BaseException:
                client.close()
                raise
            self._idle.append(client)

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
