"""The docs people read list exactly the routes the server has."""

from pathlib import Path

from feeds_server.api.app import routes_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_docs_api_lists_every_route():
    """Regenerate with `feeds-server routes` when routes change."""
    assert routes_markdown() in (ROOT / "docs" / "api.md").read_text()
