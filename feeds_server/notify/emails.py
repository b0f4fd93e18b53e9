"""Email messages: plain text and HTML (all user text escaped), one builder per kind of email.

Headers are built so that no stored value can add one: addresses are parsed as one address each
(`address_header`), and names reach the subject and the body on one line (`domain/names.py`), so a
name stored with CR LF in it before names refused them is sent as "Eve Bcc: …" in the subject, not
as a `Bcc` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
from datetime import datetime
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formatdate, formataddr, parseaddr
from functools import lru_cache
from typing import Any

from feeds_server.config import Settings
from feeds_server.domain.names import one_line
from feeds_server.store.models import EmailJob, Org, User


def address_header(address: str, display_name: str = "") -> str:
    """`Name <address>` for a header: ValueError unless `address` is exactly one address (CR, LF, a
    second address are refused); the name on one line, quoted or encoded as it needs."""
    return formataddr((one_line(display_name), Address(addr_spec=address.strip()).addr_spec))


@lru_cache(maxsize=4)
def sender(mail_from: str) -> str:
    """The From header of `FEEDS_MAIL_FROM` ("Name <address>" or an address); ValueError when it is not one address."""
    name, address = parseaddr(mail_from)
    if not address:
        raise ValueError(f"FEEDS_MAIL_FROM is not an email address: {mail_from!r}")
    return address_header(address, name)


def subject_header(subject: str) -> str:
    subject = one_line(subject)
    return subject if subject.isascii() else Header(subject, "utf-8").encode()


def _message(settings: Settings, to: str, subject: str, text: str, html_body: str, message_id: str) -> Message:
    # The compat32 MIME classes: the same bytes on the wire, several times cheaper to build than
    # EmailMessage with the default policy (it matters at hundreds of emails a second).
    msg = MIMEMultipart("alternative")
    msg["From"] = sender(settings.mail_from)
    msg["To"] = address_header(to)
    msg["Subject"] = subject_header(subject)
    msg["Message-ID"] = message_id
    msg["Date"] = formatdate(usegmt=True)
    msg["Auto-Submitted"] = "auto-generated"
    msg.attach(MIMEText(text, "plain", "utf-8"))
    msg.attach(MIMEText(html_body, "html", "utf-8"))
    return msg


def invitation_payload(org: Org, inviter: User, invitation_id: int, expires_at: datetime, link_token: str) -> dict[str, Any]:
    """What the outbox keeps to write the invitation email later (the token is dropped once sent)."""
    return {
        "org_name": org.name,
        "org_id": org.id,
        "inviter": inviter.name,
        "invitation_id": invitation_id,
        "expires_at": expires_at.isoformat(),
        "token": link_token,
    }


def invitation_email_from_payload(settings: Settings, job: EmailJob) -> Message:
    """The invitation with its accept link (the link is the only way in for IP-restricted orgs)."""
    p = job.payload
    inviter, org_name = one_line(p["inviter"]), one_line(p["org_name"])
    link = f"{settings.public_url}/#/invitation/{p['token']}"
    expires = format_datetime(datetime.fromisoformat(p["expires_at"]))
    text = (
        f"{inviter} invited you to join {org_name} on Feeds.\n\n"
        f"Accept or decline: {link}\n\n"
        f"The invitation expires on {expires}. If you do not have an account yet, sign up with "
        f"{job.to_email} first.\n"
    )
    e = html.escape
    html_body = (
        f"<p>{e(inviter)} invited you to join <strong>{e(org_name)}</strong> on Feeds.</p>"
        f'<p><a href="{e(link)}">Accept or decline the invitation</a></p>'
        f"<p>The invitation expires on {e(expires)}. If you do not have an account yet, sign up with "
        f"{e(job.to_email)} first.</p>"
    )
    return _message(
        settings, job.to_email, f"{inviter} invited you to {org_name}", text, html_body,
        f"<invitation.{p['org_id']}.{p['invitation_id']}@feeds.local>",
    )


def unsubscribe_token(secret: str, org_id: int, user_id: int, purpose: str = "unsubscribe") -> str:
    """Names (org, user) and is signed, so the one-click link needs no sign-in (RFC 8058); the
    purpose is signed too, so one email's link cannot stop another kind of email."""
    body = f"{org_id}.{user_id}"
    sig = hmac.new(secret.encode(), f"{purpose}:{body}".encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"


def check_unsubscribe_token(secret: str, token: str, purpose: str = "unsubscribe") -> tuple[int, int] | None:
    try:
        org_s, user_s, _ = token.split(".")
        org_id, user_id = int(org_s), int(user_s)
    except ValueError:
        return None
    if not hmac.compare_digest(unsubscribe_token(secret, org_id, user_id, purpose), token):
        return None
    return org_id, user_id


DIGEST_UNSUBSCRIBE = "unsubscribe-digest"


def digest_unsubscribe_token(secret: str, org_id: int, user_id: int) -> str:
    """The digest's one-click link: turns the digest off, nothing else."""
    return unsubscribe_token(secret, org_id, user_id, DIGEST_UNSUBSCRIBE)


def check_digest_unsubscribe_token(secret: str, token: str) -> tuple[int, int] | None:
    return check_unsubscribe_token(secret, token, DIGEST_UNSUBSCRIBE)


def notification_email(settings: Settings, org: Org, user: User, items: list[dict[str, Any]], message_id: str, unsub_token: str) -> Message:
    """One email for a batch of one person's notifications in one org, each item saying what it is
    (`headline`, domain/notification_text.py), with one-click unsubscribe (RFC 8058)."""
    e = html.escape
    unsubscribe_url = f"{settings.public_url}/api/v1/unsubscribe/{unsub_token}"
    settings_url = f"{settings.public_url}/#/org/{org.slug}/notifications/settings"
    org_name = one_line(org.name)
    only_mentions = all(item.get("kind", "mention") == "mention" for item in items)
    if only_mentions:
        subject = (
            f"{one_line(items[0]['author'])} mentioned you in {org_name}"
            if len(items) == 1
            else f"You were mentioned {len(items)} times in {org_name}"
        )
    else:
        subject = f"{one_line(items[0]['headline'])} in {org_name}" if len(items) == 1 else f"{len(items)} new notifications in {org_name}"
    text_parts, html_parts = [], []
    for item in items:
        link = f"{settings.public_url}/#/org/{org.slug}/post/{item['post_id']}" if item.get("post_id") else f"{settings.public_url}/#/org/{org.slug}"
        headline = one_line(item.get("headline") or f"{item['author']} mentioned you")
        if item.get("kind", "mention") == "mention":
            headline = f"{one_line(item['author'])} mentioned you in {'a comment' if item.get('comment_id') else 'a post'}"
        excerpt = item.get("excerpt") or ""
        quoted = f"\n\n  {excerpt}" if excerpt else ""
        text_parts.append(f"{headline}:{quoted}\n\nOpen it: {link}\n")
        html_parts.append(
            f"<p><strong>{e(headline)}</strong></p>"
            + (f"<blockquote>{e(excerpt)}</blockquote>" if excerpt else "")
            + f'<p><a href="{e(link)}">Open it in Feeds</a></p>'
        )
    why = "you were mentioned" if only_mentions else "of your notification settings"
    footer = (
        f"\n--\nYou get this because {why} in {org_name}. Choose what reaches you: {settings_url}\n"
        f"Stop these emails: {unsubscribe_url}\n"
    )
    html_footer = (
        f'<hr><p style="color:#666;font-size:small">You get this because {e(why)} in {e(org_name)}. '
        f'<a href="{e(settings_url)}">Choose what reaches you</a> · <a href="{e(unsubscribe_url)}">Stop these emails</a></p>'
    )
    msg = _message(settings, user.email, subject, "\n".join(text_parts) + footer, "".join(html_parts) + html_footer, message_id)
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg
