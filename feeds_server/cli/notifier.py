"""`feeds-server notifier --failed [--retry OUTBOX:ID|all]`: the dead letters, and putting them back.

A dead letter is an email, a web push, a CRM webhook call or a file preview that failed for good
(notify/dead_letters.py). The listing shows one a line: its name for `--retry` (`email:12`,
`push:5`, `webhook:7`, `preview:3`), its org, its kind, when
it failed, its attempts and the reason. `--retry` makes the named ones (or all) due again with a
fresh count of attempts; a running notifier sends them within a second.
"""

from __future__ import annotations

from feeds_server.config import Settings
from feeds_server.domain.names import one_line
from feeds_server.notify import dead_letters
from feeds_server.runtime.services import Services

MAX_REASON_CHARS = 200


async def failed(settings: Settings, retry: list[str]) -> int:
    services = Services.build(settings)
    try:
        if retry:
            try:
                n = await dead_letters.retry(services.sessions, retry, services.clock())
            except ValueError as exc:
                raise SystemExit(str(exc)) from None
            print(f"{n} dead letter(s) put back in their outbox")
            return 0
        letters = await dead_letters.listing(services.sessions)
    finally:
        await services.close()
    print(f"{len(letters)} dead letter(s)")
    if letters:
        print(f"{'NAME':<16} {'ORG':<20} {'KIND':<16} {'FAILED AT':<25} {'ATTEMPTS':>8}  REASON")
    for d in letters:
        reason = one_line(d.error)  # a mail server's answer may span lines; nothing reaches the terminal raw
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"
        when = d.failed_at.isoformat(timespec="seconds")
        print(f"{d.ref:<16} {d.org or '-':<20} {d.kind:<16} {when:<25} {d.attempts:>8}  {reason}")
    return 0
