from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from feeds_server.notify.mailer_smtp import SmtpMailer
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
