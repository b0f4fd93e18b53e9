"""Making one thumbnail, in a child process of the worker (`python -m feeds_server.notify.preview_render`).

The file's bytes come on standard input; standard output carries one JSON line, then, on success,
the thumbnail's bytes. Decoders of images and PDFs are large C libraries fed with bytes anyone may
upload: here they run in a process the worker kills past its time limit (notify/previews.py), with
its address space capped, so a file that makes them spin or swell costs that file only.

Pixels are bounded before decoding: the header's size is read first and an image of more than
`PREVIEW_MAX_PIXELS` is refused (a decompression bomb); Pillow's own check is set to the same bound.
An animated image gives its first frame; a PDF, its page count and its first page, rendered at the
scale of the thumbnail only.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import orjson

from feeds_server import limits
from feeds_server.domain import file_types

THUMBNAIL_TYPE = "image/webp"
PIL_FORMATS = ["PNG", "JPEG", "GIF", "WEBP"]
THUMBNAIL_QUALITY = 80


class Refused(Exception):
    """The file is not one the worker makes a preview of: the reason is kept for the operator."""


def render(data: bytes, max_side: int = limits.PREVIEW_MAX_SIDE, max_pixels: int = limits.PREVIEW_MAX_PIXELS) -> tuple[dict[str, Any], bytes]:
    """(what was learnt of the file, the thumbnail's bytes); Refused for a file that cannot or must not be shown."""
    kind = file_types.sniff(data[: file_types.HEAD_BYTES])
    if kind == file_types.PDF:
        return _pdf(data, max_side)
    if file_types.is_image(kind):
        return _image(data, max_side, max_pixels)
    raise Refused("not an image or a PDF")


# The EXIF tag that says how a photo is turned (ExifTags.Base.Orientation).
ORIENTATION_TAG = 0x0112


def _image(data: bytes, max_side: int, max_pixels: int) -> tuple[dict[str, Any], bytes]:
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow refuses past twice this; the check below refuses past once
    try:
        # The header only, and only with the decoders of the four types: no other plugin sees the bytes.
        image = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise Refused(f"decompression bomb: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the decoder says of a broken header
        raise Refused(f"not a readable image: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise Refused(f"decompression bomb: {width}x{height} is {width * height} pixels, more than {max_pixels}")
    # EXIF orientations 5 to 8 turn the picture a quarter: it is shown, and its thumbnail made, the
    # other way round, so the original's size is given as it is shown.
    if image.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8):
        width, height = height, width
    try:
        image.seek(0)  # an animation: its first frame
        image.draft("RGB", (max_side, max_side))  # JPEG decodes straight at a smaller scale
        image.load()
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        image.thumbnail((max_side, max_side))
    except Image.DecompressionBombError as exc:
        raise Refused(f"decompression bomb: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise Refused(f"not a readable image: {exc}") from None
    return {"width": width, "height": height, "page_count": None, **_size(image)}, _encode(image)


def _has_alpha(image: Any) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _pdf(data: bytes, max_side: int) -> tuple[dict[str, Any], bytes]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as exc:  # noqa: BLE001 - broken, encrypted
        raise Refused(f"not a readable PDF: {exc}") from None
    try:
        pages = len(pdf)
        if pages < 1:
            raise Refused("a PDF without pages")
        page = pdf[0]
        width, height = page.get_size()
        if not (width > 0 and height > 0):
            raise Refused("the first page has no size")
        # Rendered at the thumbnail's scale: a page of any claimed size costs max_side² pixels at most.
        scale = min(max_side / width, max_side / height)
        image = page.render(scale=scale).to_pil().convert("RGB")
        image.thumbnail((max_side, max_side))
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - a page pdfium cannot render
        raise Refused(f"the first page cannot be rendered: {exc}") from None
    finally:
        pdf.close()
    return {"width": None, "height": None, "page_count": pages, **_size(image)}, _encode(image)


def _size(image: Any) -> dict[str, int]:
    return {"preview_width": image.size[0], "preview_height": image.size[1]}


def _encode(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def _cap_memory(max_bytes: int) -> None:
    try:
        import resource
    except ImportError:  # not on this system: the pixel bound and the timeout still hold
        return
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def main() -> int:
    memory = int(sys.argv[1]) if len(sys.argv) > 1 else limits.PREVIEW_MEMORY_BYTES
    data = sys.stdin.buffer.read()
    _cap_memory(memory)
    try:
        facts, thumbnail = render(data)
    except Refused as exc:
        sys.stdout.buffer.write(orjson.dumps({"ok": False, "reason": str(exc)[:400]}) + b"\n")
        return 0
    except MemoryError:
        sys.stdout.buffer.write(orjson.dumps({"ok": False, "reason": "decoding needs more memory than allowed"}) + b"\n")
        return 0
    head = {"ok": True, "type": THUMBNAIL_TYPE, **facts}
    sys.stdout.buffer.write(orjson.dumps(head) + b"\n" + thumbnail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
