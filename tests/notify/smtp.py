"""A real SMTP server (aiosmtpd) for the tests, that can be told to refuse."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.server import free_port


@dataclass
class Recorder:
    """Accepted messages, plus refusal rules: a code for given recipients, or for the next N messages."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> "550 ..." / "451 ..."
    refuse_next: list[str] = field(default_factory=list)  # codes for the next DATA commands
    hold: threading.Event | None = None  # while not set, DATA waits (the server runs in its own thread)
    in_data: int = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_next:
            return self.refuse_next.pop(0)
        self.in_data += 1
        while self.hold is not None and not self.hold.is_set():
            await asyncio.sleep(0.01)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> "SmtpServer":
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
