"""Names people give things (people, orgs, groups, roles, profiles, territories, rules, records,
files): one line of text without control characters.

A name travels to places where a line break or a control character means something else: an email
header (CR LF there starts a new header), a log line, a `Content-Disposition` header, an export.
So a name is refused where it enters when it holds one (`check_name`), and a name stored before
that rule is put on one line where it leaves for such a place (`one_line`).
"""

from __future__ import annotations

import re

from feeds_server.errors import ValidationFailed

# Unicode category Cc (C0 and C1 controls: NUL, TAB, LF, CR, ESC, DEL, NEL …) and the line and
# paragraph separators U+2028 and U+2029, which some mail and log readers treat as line breaks.
FORBIDDEN_CHARS = "\x00-\x1f\x7f-\x9f\u2028\u2029"  # the inside of a regex character class
_FORBIDDEN_RUN = re.compile(f"[{FORBIDDEN_CHARS}]+")


def first_forbidden(value: str) -> str | None:
    """The first control character or line separator of `value`, or None."""
    match = _FORBIDDEN_RUN.search(value)
    return match.group()[0] if match else None


def describe(char: str) -> str:
    """`U+000D`: how a refusal names the character (printing it would break the message itself)."""
    return f"U+{ord(char):04X}"


def check_name(value: str, field: str = "name") -> str:
    """`value` unchanged, or 422 `validation_failed` naming the field and the character."""
    char = first_forbidden(value)
    if char is not None:
        raise ValidationFailed(
            "validation_failed", f"{field}: must not contain control characters or line breaks ({describe(char)})", field=field
        )
    return value


def one_line(value: str) -> str:
    """`value` with each run of control characters and line breaks made one space, then stripped."""
    return _FORBIDDEN_RUN.sub(" ", value).strip()
