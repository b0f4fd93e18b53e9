"""Streaming multipart parsing of a message with attachments (F-POST-7).

Limits are checked while the bytes arrive: the sixth file, the byte past 4 MiB in one file or past
20 MiB in all files stops the upload at once, without reading the rest of the request. File bytes go
straight to temporary storage, never held whole in memory; on any refusal they are discarded.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field

from pydantic import BaseModel
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from feeds_server import limits
from feeds_server.actions.posts import StoredFile
from feeds_server.domain import file_types, names
from feeds_server.api.inputs import parse_json_body
from feeds_server.errors import BadRequest, LimitExceeded, PayloadTooLarge, ValidationFailed
from feeds_server.runtime.services import Services
from feeds_server.store.files import LocalFileStore, TempFile
from feeds_server.domain.numbers import is_digits

MESSAGE_PART = "message"
FILE_PART = "files"
# The whole request: the files' 20 MiB, the message part and room for multipart framing. Counted as
# the bytes arrive, whatever the parts are (a stream of small parts is refused at this size too).
MAX_UPLOAD_BYTES = limits.MAX_FILES_TOTAL_BYTES + limits.MAX_JSON_BODY_BYTES + limits.UPLOAD_ENVELOPE_BYTES

SAFE_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "text/csv",
        "application/zip", "application/msword", "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)


def safe_filename(raw: str) -> str:
    """The last path segment, without format characters (such as right-to-left overrides); never
    empty, at most 255 characters. Control characters are refused with 422 `invalid_filename`."""
    char = names.first_forbidden(raw)
    if char is not None:  # refused rather than dropped: a name that needs one is not one a person typed
        raise ValidationFailed(
            "invalid_filename", f"a file name must not contain control characters or line breaks ({names.describe(char)})", field="files"
        )
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    return (name or "file")[:255]


def safe_content_type(raw: str) -> str:
    """Declared types outside a short list are served as opaque bytes (downloads are attachments anyway)."""
    ctype = raw.split(";", 1)[0].strip().lower()
    return ctype if ctype in SAFE_TYPES else "application/octet-stream"


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    content_type: str = "application/octet-stream"
    size: int = 0
    data: bytearray = field(default_factory=bytearray)
    head: bytearray = field(default_factory=bytearray)  # a file's first bytes: what it is (domain/file_types.py)
    temp: TempFile | None = None
    digest: "hashlib._Hash" = field(default_factory=hashlib.sha256)


@dataclass
class Upload:
    message: bytes
    files: list[StoredFile]
    temps: list[TempFile]

    def commit(self) -> None:
        """Move the files under their final keys (before the database commit refers to them)."""
        for temp in self.temps:
            temp.commit()

    def discard(self) -> None:
        for temp in self.temps:
            temp.discard()


class _Reader:
    def __init__(self, store: LocalFileStore) -> None:
        self.store = store
        self.parts: list[_Part] = []
        self.current: _Part | None = None
        self.field = b""
        self.value = b""
        self.total = 0
        self.files = 0
        self.messages = 0
        self.ended = False  # the closing boundary has been read: nothing after it is

    # Callbacks of python-multipart; they run inside `parser.write`, so raising stops the upload.
    def on_part_begin(self) -> None:
        self.current = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        assert self.current is not None
        self.current.headers[self.field.decode("latin-1").lower()] = self.value.decode("utf-8", "replace")
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        part = self.current
        assert part is not None
        # As bytes: given text, the parser encodes it as Latin-1, which fails on other characters.
        _, params = parse_options_header(part.headers.get("content-disposition", "").encode())
        part.name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        part.content_type = part.headers.get("content-type", "application/octet-stream")
        if part.name == FILE_PART or filename is not None:
            if part.name != FILE_PART:
                raise ValidationFailed("unknown_part", f"unexpected file part {part.name!r}; send files as 'files'")
            self.files += 1
            if self.files > limits.MAX_FILES_PER_POST:
                raise LimitExceeded(
                    "too_many_files", f"at most {limits.MAX_FILES_PER_POST} files per message", limit=limits.MAX_FILES_PER_POST
                )
            part.filename = safe_filename((filename or b"").decode("utf-8", "replace"))
            part.temp = TempFile(self.store.folder)
        elif part.name != MESSAGE_PART:
            raise ValidationFailed("unknown_part", f"unexpected part {part.name!r}; send 'message' and 'files'")
        else:
            self.messages += 1
            if self.messages > 1:
                raise ValidationFailed("missing_message", "send exactly one 'message' part (JSON)")
        self.parts.append(part)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        assert part is not None
        chunk = data[start:end]
        part.size += len(chunk)
        if part.temp is None:
            if part.size > limits.MAX_JSON_BODY_BYTES:
                raise PayloadTooLarge("body_too_large", "the message part is too large", limit=limits.MAX_JSON_BODY_BYTES)
            part.data += chunk
            return
        self.total += len(chunk)
        if part.size > limits.MAX_FILE_BYTES:
            raise PayloadTooLarge("file_too_large", f"a file may be at most {limits.MAX_FILE_BYTES} bytes", limit=limits.MAX_FILE_BYTES, filename=part.filename)
        if self.total > limits.MAX_FILES_TOTAL_BYTES:
            raise PayloadTooLarge(
                "files_too_large", f"all files together may be at most {limits.MAX_FILES_TOTAL_BYTES} bytes", limit=limits.MAX_FILES_TOTAL_BYTES
            )
        if len(part.head) < file_types.HEAD_BYTES:
            part.head += chunk[: file_types.HEAD_BYTES - len(part.head)]
        part.digest.update(chunk)
        part.temp.write(chunk)

    def on_part_end(self) -> None:
        self.current = None

    def on_end(self) -> None:
        self.ended = True


def file_store(services: Services) -> LocalFileStore:
    return LocalFileStore(services.settings.files_dir)


def is_upload(request: Request) -> bool:
    """Whether the request is multipart (an endpoint that takes files reads it as an upload)."""
    return request.headers.get("content-type", "").startswith("multipart/")


async def read_message_and_files(request: Request, store: LocalFileStore, model: type[BaseModel]) -> tuple[BaseModel, Upload]:
    """The `message` part parsed against the endpoint's body model, and the files, in temporary
    storage until `Upload.commit`; nothing is left behind when either is refused."""
    upload = await read_upload(request, store)
    try:
        return parse_json_body(upload.message, model), upload
    except BaseException:
        upload.discard()
        raise


async def read_upload(request: Request, store: LocalFileStore) -> Upload:
    """Parse `message` (JSON) and up to five `files` parts; raise on the first limit crossed."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise BadRequest("unsupported_media_type", "send multipart/form-data with a 'message' part and 'files' parts")
    declared = request.headers.get("content-length", "")
    if is_digits(declared) and int(declared) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            "files_too_large", f"all files together may be at most {limits.MAX_FILES_TOTAL_BYTES} bytes", limit=limits.MAX_FILES_TOTAL_BYTES
        )
    reader = _Reader(store)
    callbacks = {name: getattr(reader, name) for name in dir(reader) if name.startswith("on_")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_UPLOAD_BYTES:
                raise PayloadTooLarge("request_too_large", f"an upload may be at most {MAX_UPLOAD_BYTES} bytes in all", limit=MAX_UPLOAD_BYTES)
            parser.write(chunk)
            if reader.ended:
                # Whatever follows the closing boundary is not read; the answer closes the connection.
                request.state.unread_body = True
                break
        parser.finalize()
        return _result(reader)
    except MultipartParseError:
        _discard(reader)
        request.state.unread_body = True
        raise BadRequest("malformed_multipart", "the multipart body is malformed") from None
    except BaseException:
        _discard(reader)
        request.state.unread_body = True
        raise


def _discard(reader: _Reader) -> None:
    for part in reader.parts:
        if part.temp is not None:
            part.temp.discard()


def _result(reader: _Reader) -> Upload:
    messages = [p for p in reader.parts if p.name == MESSAGE_PART]
    if len(messages) != 1:
        raise ValidationFailed("missing_message", "send exactly one 'message' part (JSON)")
    files = [p for p in reader.parts if p.temp is not None]
    stored = [
        StoredFile(
            p.filename or "file", safe_content_type(p.content_type), p.size, p.digest.hexdigest(), p.temp.key,  # type: ignore[union-attr]
            file_types.sniff(bytes(p.head)),
        )
        for p in files
    ]
    return Upload(bytes(messages[0].data), stored, [p.temp for p in files if p.temp is not None])


__all__ = ["Upload", "file_store", "is_upload", "read_message_and_files", "read_upload", "safe_content_type", "safe_filename"]
