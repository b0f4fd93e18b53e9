"""An account's own emails, as the notifier worker writes them: verify the address, reset the
password, "you already have an account", "sign-ins to your account were refused".

Links are signed here, when the email is written (domain/account_links.py), over the account as it is
then: the outbox never holds them. A link's life counts from when the email was asked for.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from email.message import Message

from feeds_server import limits
from feeds_server.actions import account_mail
from feeds_server.actions.credentials import reset_state
from feeds_server.config import Settings
from feeds_server.domain import account_links
from feeds_server.notify.emails import _message
from feeds_server.store.models import EmailJob, User

KINDS = account_mail.KINDS

# (subject, text paragraphs, link text, link): paragraphs are plain text, escaped for the HTML part.
Parts = tuple[str, list[str], str, str]


def compose(settings: Settings, job: EmailJob, user: User | None) -> Message | None:
    """The email of `job`, or None when it is not to be sent any more (the account was erased, its
    address is no longer the one the email was for, or the address it asks to verify is verified)."""
    if user is None or user.email != job.to_email:
        return None
    if job.kind == account_mail.VERIFY_EMAIL and user.email_verified_at is not None:
        return None  # verified meanwhile (through an invitation's link, say)
    subject, paragraphs, link_text, link = _BUILDERS[job.kind](settings, job, user)
    text = "\n\n".join([*paragraphs[:1], f"{link_text}: {link}", *paragraphs[1:]]) + "\n"
    e = html.escape
    html_body = (
        (f"<p>{e(paragraphs[0])}</p>" if paragraphs else "")
        + f'<p><a href="{e(link)}">{e(link_text)}</a></p>'
        + "".join(f"<p>{e(p)}</p>" for p in paragraphs[1:])
    )
    return _message(settings, user.email, subject, text, html_body, f"<{job.kind}.{job.id}@feeds.local>")


def _verify_link(settings: Settings, job: EmailJob, user: User) -> str:
    expires = job.created_at + limits.EMAIL_VERIFICATION_TTL
    token = account_links.sign(settings.secret_key, account_links.VERIFY_EMAIL, user.id, expires, user.email)
    return f"{settings.public_url}/#/verify-email/{token}"


def _reset_link(settings: Settings, job: EmailJob, user: User) -> str:
    expires = job.created_at + limits.PASSWORD_RESET_TTL
    token = account_links.sign(settings.secret_key, account_links.RESET_PASSWORD, user.id, expires, reset_state(user.password_hash))
    return f"{settings.public_url}/#/reset-password/{token}"


def _minutes(ttl_seconds: float) -> int:
    return int(ttl_seconds // 60)


def _verify(settings: Settings, job: EmailJob, user: User) -> Parts:
    days = limits.EMAIL_VERIFICATION_TTL.days
    return (
        "Confirm your email address for Feeds",
        [
            f"Hello {user.name}, confirm that {user.email} is your address: invitations to join an org "
            "that are sent to it show in Feeds once you do.",
            f"The link works for {days} days. If you did not sign up for Feeds, ignore this email.",
        ],
        "Confirm my address",
        _verify_link(settings, job, user),
    )


def _reset(settings: Settings, job: EmailJob, user: User) -> Parts:
    minutes = _minutes(limits.PASSWORD_RESET_TTL.total_seconds())
    return (
        "Reset your Feeds password",
        [
            "Someone asked to reset the password of your Feeds account. If it was you, choose a new one:",
            f"The link works once, for {minutes} minutes, and signs out every session of your account. "
            "If you did not ask for it, ignore this email: your password stays as it is.",
        ],
        "Choose a new password",
        _reset_link(settings, job, user),
    )


def _exists(settings: Settings, job: EmailJob, user: User) -> Parts:
    minutes = _minutes(limits.PASSWORD_RESET_TTL.total_seconds())
    return (
        "You already have a Feeds account",
        [
            f"Someone tried to sign up for Feeds with {user.email}, which already has an account. If it was you, "
            "sign in with your password, or if you forgot it, reset it here:",
            f"The link works once, for {minutes} minutes. If it was not you, ignore this email: nothing was changed.",
        ],
        "Reset my password",
        _reset_link(settings, job, user),
    )


def _refused(settings: Settings, job: EmailJob, user: User) -> Parts:
    address = str(job.payload.get("address") or "an unknown address")
    return (
        "Sign-ins to your Feeds account were paused",
        [
            f"Too many wrong passwords were tried for your Feeds account from {address}, so sign-ins from there "
            "are paused for a while. Your own sign-ins from elsewhere still work.",
            "If it was not you, your password held; you may still want to change it. If you forgot it, reset it with "
            "the link above (it works once, for a short time).",
        ],
        "Reset my password",
        _reset_link(settings, job, user),
    )


_BUILDERS: dict[str, Callable[[Settings, EmailJob, User], Parts]] = {
    account_mail.VERIFY_EMAIL: _verify,
    account_mail.PASSWORD_RESET: _reset,
    account_mail.ACCOUNT_EXISTS: _exists,
    account_mail.SIGN_IN_REFUSED: _refused,
}

