"""Turns an `Endpoint` into a Starlette route: its body read, its caller checked, its declared checks
run, its input parsed, its handler run in one transaction, its events published after commit, its
errors in one shape.

The order matters: a JSON body is read before any session opens (a slow client holds nothing another
request waits for); who is calling is settled before the body is parsed (a stranger learns nothing
from validation errors); an upload's files are read only after its caller and rate limits are known.
Callers: api/access.py; input: api/inputs.py and api/uploads.py; answers: api/responses.py;
retries: api/idempotency_keys.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from feeds_server.actions import audit
from feeds_server.api.access import authorize, request_address
from feeds_server.api.context import Ctx, Deferred
from feeds_server.api.idempotency_keys import begin_idempotent, canonical
from feeds_server.api.inputs import parse_json_body, parse_query, path_params, read_body, read_json
from feeds_server.api import throttle
from feeds_server.api.uploads import Upload, file_store, is_upload, read_message_and_files
from feeds_server.api.responses import error_response, json_response
from feeds_server.api.routing import Endpoint
from feeds_server.errors import Conflict, FeedsError, InternalError, RequestTimeout
from feeds_server.runtime import logs, metrics
from feeds_server.runtime.services import Services
from feeds_server.store import idempotency
from feeds_server.store.events import NewEvent, take_committed_events
from feeds_server.store.scope import set_org

log = logging.getLogger("feeds_server.api")


def build_route(endpoint: Endpoint) -> Route:
    latency = None  # the route's histogram, bound on its first request: unused routes export nothing

    async def endpoint_app(request: Request) -> Response:
        nonlocal latency
        rid = _request_id(request.headers.get("x-request-id", ""))
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        try:
            response = await _answer(request)
        except Exception:
            # Answered here rather than by Starlette's last-resort handler, so that the 500 carries
            # the request id (in its body and header) that the logged traceback carries too.
            log.exception("unhandled error on %s %s", endpoint.method, endpoint.path)
            response = error_response(InternalError())
        response.headers["X-Request-ID"] = rid
        if getattr(request.state, "unread_body", False):
            # The rest of the body is not read: uvicorn must not take it for the next request.
            response.headers["Connection"] = "close"
        elapsed = time.perf_counter() - started
        if latency is None:
            latency = metrics.HTTP_LATENCY.labels(endpoint.method, endpoint.path.replace(":int", ""))
        latency.observe(elapsed)
        log.info(
            "request", extra={"method": endpoint.method, "route": endpoint.path, "status": response.status_code,
                              "duration_ms": round(elapsed * 1000, 2)},
        )
        logs.request_id.reset(token)
        return response

    async def _answer(request: Request) -> Response:
        services: Services = request.app.state.services
        try:
            try:
                if endpoint.body is not None and not (endpoint.files and is_upload(request)):
                    # Before any session opens: a client that sends its body slowly holds no
                    # connection, transaction or lock (api/http_wire.py bounds how slowly).
                    await read_body(request)
                return await _run(endpoint, request, services)
            except IntegrityError:
                body_kept = getattr(request.state, "json_body", None) is not None
                if not (endpoint.idempotent and request.headers.get("idempotency-key") and body_kept):
                    raise
                # A concurrent request with the same key won the race: answer with its stored response.
                return await _run(endpoint, request, services)
        except FeedsError as exc:
            return error_response(exc)
        except IntegrityError:
            log.info("integrity error on %s %s", endpoint.method, endpoint.path, exc_info=True)
            return error_response(Conflict("conflict", "the request clashes with existing data"))
        except ClientDisconnect:
            # The client went away, or the node closed it for sending its body too slowly (408):
            # nothing reaches it any more, and it is no server error.
            log.info("client disconnected during %s %s", endpoint.method, endpoint.path)
            return error_response(RequestTimeout("client_disconnected", "the request body did not arrive"))

    return Route(endpoint.path, endpoint_app, methods=[endpoint.method], name=f"{endpoint.method} {endpoint.path}")


def _request_id(raw: str) -> str:
    """The client's X-Request-ID if it is a short token that is safe in a header and a log line."""
    if raw and len(raw) <= 64 and raw.isascii() and all(c.isalnum() or c in "-_.:" for c in raw):
        return raw
    return uuid.uuid4().hex


async def _run(endpoint: Endpoint, request: Request, services: Services) -> Response:
    path = path_params(request)
    if endpoint.reads_only and (endpoint.files or not services.settings.is_sqlite):
        # Uploads too on SQLite: the caller is checked in a session of its own that closes before
        # the files are read, so the write lock is not held while they arrive.
        return await _run_on_demand(endpoint, request, services, path)
    session: AsyncSession | None = None
    try:
        async with (services.read_sessions() if endpoint.reads_only else services.sessions()) as session:
            ctx = Ctx(request=request, services=services, opened_session=session, path=path)
            audit.bind_address(session, lambda: request_address(ctx))
            try:
                response = await _in_transaction(ctx, endpoint, request, services)
            except BaseException:
                await _undo(ctx)
                raise
            events = take_committed_events(session)
        return await _finish(ctx, endpoint, response, events)
    finally:
        if session is not None:
            # The audit hook refers to ctx: leave no reference cycle (the request, its body, the
            # session) for the cyclic collector to trace; a record batch's is several MB.
            audit.unbind_address(session)


async def _run_on_demand(endpoint: Endpoint, request: Request, services: Services, path: dict[str, Any]) -> Response:
    """A `reads_only` endpoint on PostgreSQL: its session (AUTOCOMMIT, no BEGIN or COMMIT to send)
    is opened only if the handler uses it (api/context.py `open_on_demand`)."""
    ctx = Ctx(request=request, services=services, opened_session=None, path=path)
    ctx.open_on_demand(_open_read_session)
    events: list[NewEvent] = []
    try:
        try:
            response = await _in_transaction(ctx, endpoint, request, services, begin=False)
            session = ctx.opened_session
            if session is not None:
                await session.commit()  # what the handler left in it (nothing is sent if it only read)
                events = take_committed_events(session)
        finally:
            if ctx.opened_session is not None:
                await ctx.opened_session.close()
    except BaseException:
        await _undo(ctx)
        raise
    finally:
        ctx.opened_session = None  # its audit hook refers to ctx: leave no reference cycle behind
    return await _finish(ctx, endpoint, response, events)


def _open_read_session(ctx: Ctx) -> AsyncSession:
    session = ctx.services.read_sessions()
    audit.bind_address(session, lambda: request_address(ctx))
    if ctx.org is not None:
        set_org(session, ctx.org.id)
    return session


async def _finish(ctx: Ctx, endpoint: Endpoint, response: Response | Deferred, events: list[NewEvent]) -> Response:
    """After the request's transaction: publish its events, complete a deferred write, run the
    after-commit steps."""
    if events:
        await ctx.services.publish(events)
    if isinstance(response, Deferred):
        try:
            response = json_response(await response.complete(), endpoint.status)
        except BaseException:
            await _undo(ctx)
            raise
    for action in ctx._after_commit:
        try:
            await action()
        except Exception:  # an after-commit step must not turn a committed change into an error
            log.exception("after-commit step failed")
    return response


async def _undo(ctx: Ctx) -> None:
    for undo in ctx._on_rollback:
        await undo()


async def _in_transaction(ctx: Ctx, endpoint: Endpoint, request: Request, services: Services, begin: bool = True) -> Response | Deferred:
    """Authorize, run the endpoint's checks, then read the input, run the handler and render its
    response, in one transaction (`begin=False`: the caller commits the session, if one was opened).

    Who is calling is settled before the body is parsed: a stranger learns nothing from validation
    errors. An upload's files are read only then, after its rate limits.
    """
    async with ctx.session.begin() if begin else contextlib.nullcontext():
        await authorize(ctx, endpoint)
        for check in endpoint.checks:
            await check(ctx)
        upload: Upload | None = None
        if endpoint.files and is_upload(request):
            await throttle.uploading(ctx)
            ctx.body, upload = await read_message_and_files(request, file_store(services), endpoint.body)  # type: ignore[arg-type]
            ctx.files = tuple(upload.files)
        elif endpoint.body is not None:
            ctx.body = parse_json_body(await read_json(request), endpoint.body)
        if endpoint.query is not None:
            ctx.query = parse_query(request, endpoint.query)
        try:
            return await _handle(ctx, endpoint, request, services, upload)
        except BaseException:
            if upload is not None:
                upload.discard()
            raise


async def _handle(ctx: Ctx, endpoint: Endpoint, request: Request, services: Services, upload: Upload | None) -> Response | Deferred:
    """Answer a retried request from its stored response, else run the handler and render its result."""
    key = request.headers.get("idempotency-key") if endpoint.idempotent else None
    if key is not None and ctx.body is not None:
        digests = [f.sha256 for f in upload.files] if upload is not None else []
        stored = await begin_idempotent(ctx, key, idempotency.fingerprint(request.url.path, canonical(ctx.body), *digests))
        if stored is not None:
            if upload is not None:
                upload.discard()
            return stored
    result = await endpoint.handler(ctx)
    if upload is not None:
        _keep_files(ctx, upload)
    if isinstance(result, Deferred):
        return result
    if isinstance(result, Response):
        response = result
    elif result is None:
        response = Response(status_code=204)
    else:
        response = json_response(result, endpoint.status)
    if ctx.idempotency is not None and ctx.member is not None:
        key, print_ = ctx.idempotency
        idempotency.remember(ctx.session, ctx.member.user_id, key, print_, response.status_code, bytes(response.body), services.clock())
    return response


def _keep_files(ctx: Ctx, upload: Upload) -> None:
    """The handler accepted the files: move them under their final keys before the database commit
    refers to them, and remove them if that commit, or a deferred write, does not happen."""
    upload.commit()
    store = file_store(ctx.services)

    async def remove_files() -> None:
        for f in upload.files:
            await store.delete(f.storage_key)

    ctx.on_rollback(remove_files)
