"""Mail sent through an SMTP server with aiosmtplib (TLS and auth from the settings)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from feeds_server.config import Settings


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user or None,
            password=s.smtp_password or None,
            use_tls=s.smtp_tls == "tls",
            start_tls=True if s.smtp_tls == "starttls" else False,
            timeout=30,
        )
