"""Email messages: plain text and HTML (all user text escaped), one builder per kind of email."""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from feeds_server.config import Settings
from feeds_server.store.models import Invitation, Org, User


def _message(settings: Settings, to: str, subject: str, text: str, html_body: str, message_id: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="feeds.local")
    msg.set_content(text)
    msg.add_alternative(html_body, subtype="html")
    return msg


def invitation_email(settings: Settings, org: Org, inviter: User, invitation: Invitation, link_token: str) -> EmailMessage:
    """The invitation with its accept link (the link is the only way in for IP-restricted orgs)."""
    link = f"{settings.public_url}/#/invitation/{link_token}"
    expires = format_datetime(invitation.expires_at)
    text = (
        f"{inviter.name} invited you to join {org.name} on Feeds.\n\n"
        f"Accept or decline: {link}\n\n"
        f"The invitation expires on {expires}. If you do not have an account yet, sign up with "
        f"{invitation.email} first.\n"
    )
    e = html.escape
    html_body = (
        f"<p>{e(inviter.name)} invited you to join <strong>{e(org.name)}</strong> on Feeds.</p>"
        f'<p><a href="{e(link)}">Accept or decline the invitation</a></p>'
        f"<p>The invitation expires on {e(expires)}. If you do not have an account yet, sign up with "
        f"{e(invitation.email)} first.</p>"
    )
    return _message(
        settings,
        invitation.email,
        f"{inviter.name} invited you to {org.name}",
        text,
        html_body,
        message_id=f"<invitation-{invitation.id}.{org.id}@feeds.local>",
    )
