"""Taking one person out of stored documents, for erasure (GDPR, F-OPS-3). Pure: no I/O.

Others' items stay, but nothing in them names the erased person any more: a mention of them becomes
the text `@(deleted)`, a reference to them as author, recipient, owner or actor becomes null (as
the API shows any user who no longer exists), and their email address and name are dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ERASED_MENTION = "@(deleted)"
ERASED_NAME = "(deleted)"

# Keys under which a document names a person by a small object ({"id", "name"} or {"email", "name"}).
PERSON_KEYS = frozenset({"author", "recipient", "owner", "actor", "user", "creator", "inviter", "invited_by"})
# Keys holding message text, where mention tokens live.
TEXT_KEYS = frozenset({"body", "text", "excerpt"})


@dataclass(frozen=True)
class Person:
    """Who is being erased, as stored documents may name them."""

    user_id: int
    email: str
    name: str

    @property
    def mention_token(self) -> str:
        return f"@[user:{self.user_id}]"

    def is_named_by(self, ref: Any) -> bool:
        if not isinstance(ref, dict):
            return False
        email = ref.get("email")
        return ref.get("id") == self.user_id or (isinstance(email, str) and email.lower() == self.email)


def scrub_text(text: str, person: Person, rendered: bool = False) -> str:
    """Mention tokens of the person become `@(deleted)`; in `rendered` text (an excerpt, where a
    mention is already "@Name") their name does too."""
    text = text.replace(person.mention_token, ERASED_MENTION)
    if rendered and person.name:
        text = re.sub(re.escape("@" + person.name) + r"(?!\w)", ERASED_MENTION, text)
    return text


def scrub(doc: Any, person: Person) -> Any:
    """A copy of a JSON document without the person in it (the same value when nothing changed)."""
    if isinstance(doc, list):
        return [scrub(item, person) for item in doc]
    if not isinstance(doc, dict):
        return doc
    if doc.get("type") == "mention" and doc.get("kind") == "user" and doc.get("id") == person.user_id:
        return {"type": "text", "text": ERASED_MENTION}
    names_them = doc.get("user_id") == person.user_id
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in PERSON_KEYS and person.is_named_by(value):
            out[key] = None
        elif key in PERSON_KEYS and isinstance(value, str) and value == person.name:
            out[key] = ERASED_NAME
        elif key.endswith("_id") and key != "user_id" and value == person.user_id and key.split("_")[0] in PERSON_KEYS:
            out[key] = None
        elif key == "email" and isinstance(value, str) and value.lower() == person.email:
            out[key] = None
        elif key == "name" and names_them:
            out[key] = None
        elif key in TEXT_KEYS and isinstance(value, str):
            out[key] = scrub_text(value, person, rendered=key == "excerpt")
        else:
            out[key] = scrub(value, person)
    return out


def search_terms(person: Person) -> list[str]:
    """Substrings at least one of which a stored document naming the person contains (a prefilter):
    wherever a document names them it has their name or email beside the id, or a mention token.
    A name with quotes or backslashes is stored escaped in JSON, so that spelling is searched too."""
    in_json = json.dumps(person.name, ensure_ascii=False)[1:-1]
    return list(dict.fromkeys(term for term in (person.mention_token, person.email, person.name, in_json) if term))
