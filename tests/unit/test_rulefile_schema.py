"""`rules/schema.json` is generated from the rule file models: the committed file is what they say."""

from __future__ import annotations

from pathlib import Path

from feeds_server.domain.rulefile_schema import REGENERATE, render

SCHEMA = Path(__file__).resolve().parents[2] / "rules" / "schema.json"


def test_the_committed_schema_is_the_generated_one():
    assert SCHEMA.read_text(encoding="utf-8") == render(), f"rules/schema.json is out of date: regenerate it with `{REGENERATE}`"
