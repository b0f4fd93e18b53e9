"""The mail interface. Backends are chosen by configuration and imported late."""

from __future__ import annotations

from email.message import Message
from typing import Protocol

from feeds_server.config import Settings


class Mailer(Protocol):
    async def send(self, message: Message) -> None:
        """Hand one message to the mail system; raise on failure."""


def create_mailer(settings: Settings) -> Mailer:
    """SMTP when `FEEDS_SMTP_HOST` is set, otherwise `.eml` files in the local mail folder."""
    if settings.smtp_host:
        from feeds_server.notify.mailer_smtp import SmtpMailer

        return SmtpMailer(settings)
    from feeds_server.notify.mailer_maildir import MaildirMailer

    return MaildirMailer(settings.mail_dir)
