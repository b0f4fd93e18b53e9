from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from feeds_server.notify.mailer_smtp import SmtpMailer
from tests import factory
from tests.notify.smtp import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_services(services, smtp):  # type: ignore[no-untyped-def]
    """The test's services, sending through the real SMTP server."""
    services.settings = replace(services.settings, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none")
    services.mailer = SmtpMailer(services.settings)
    return services


@pytest.fixture
async def team(client, services, settings):  # type: ignore[no-untyped-def]
    """An org of four; built before the SMTP server is switched on, so invitations land in the mail folder."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    people = []
    for name in ("Ann", "Bob", "Cid"):
        actor = await factory.sign_up(client, factory.unique(name))
        await factory.invite_and_join(owner, org["slug"], actor, settings.mail_dir)
        people.append(actor)
    return owner, *people, org
