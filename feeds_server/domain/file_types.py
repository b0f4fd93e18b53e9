"""What a file is, read from its first bytes (its magic number), never from the type its uploader declared.

A browser or a script may declare `image/png` for any bytes; only what the bytes start with decides
whether the worker makes a preview of a file and whether the server ever shows it inline.
"""

from __future__ import annotations

PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
WEBP = "image/webp"
PDF = "application/pdf"

IMAGE_TYPES = frozenset({PNG, JPEG, GIF, WEBP})
# The types the worker makes a thumbnail of (notify/previews.py).
PREVIEWABLE = IMAGE_TYPES | {PDF}
# Enough of a file's start to tell every type above apart.
HEAD_BYTES = 16

# An attachment's `preview_state` as it is written with the file: a thumbnail to make, or nothing to
# make (not an image or a PDF). NULL is a file stored before previews existed, never looked at
# (actions/preview_backfill.py); the worker moves "pending" on (notify/previews.py).
PREVIEW_PENDING = "pending"
PREVIEW_NONE = "none"


def sniff(head: bytes) -> str | None:
    """The media type the bytes announce, or None for anything not listed above."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    # Readers accept "%PDF-" a little later in the file too; a preview is made only of a file that starts with it.
    if head.startswith(b"%PDF-"):
        return PDF
    return None


def is_image(media_type: str | None) -> bool:
    return media_type in IMAGE_TYPES


def previewable(media_type: str | None) -> bool:
    return media_type in PREVIEWABLE
