"""The delay before a failed send is tried again, shared by the email outbox and CRM webhooks.

Exponential backoff with "equal jitter": the ceiling doubles from `base` with each attempt up to
`cap`, and the delay is drawn uniformly between half the ceiling and the ceiling. Half is kept so a
retry never comes sooner than the backoff intends (full jitter may retry at once); the other half
is random so that jobs failing together, when a mail server or a CRM is down, do not come back
together.
"""

from __future__ import annotations

import random


def backoff_seconds(attempts: int, base: float, cap: float, draw: float | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed try (1 for the first): between half the
    ceiling `min(cap, base * 2 ** (attempts - 1))` and the ceiling. `draw` in [0, 1) fixes the
    jitter (tests); by default it is random."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    jitter = random.random() if draw is None else draw
    return ceiling / 2 + jitter * ceiling / 2
