"""Turns an `Endpoint` into a Starlette route: auth, org scope, parsing, one transaction, errors."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from feeds_server import limits
from feeds_server.runtime import logs, metrics
from feeds_server.secrets import tokens
from feeds_server.store import idempotency
from feeds_server.actions import audit
from feeds_server.api.context import Ctx, Deferred, Member
from feeds_server.api.routing import INTEGRATION, MEMBER, PUBLIC, Endpoint
from feeds_server.domain import network
from feeds_server.domain import permissions as perms
from feeds_server.errors import (
    BadRequest,
    Conflict,
    FeedsError,
    Forbidden,
    InternalError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unauthenticated,
    ValidationFailed,
)
from feeds_server.runtime.services import Services
from feeds_server.store.callers import find_caller
from feeds_server.store.events import NewEvent, take_committed_events
from feeds_server.store.models import AuthToken, Integration, Membership, Org, Profile, User
from feeds_server.store.scope import ORG_LOOKUP, allow_cross_org, set_org

log = logging.getLogger("feeds_server.api")

MAX_ID = 2**63 - 1


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(exc: FeedsError) -> Response:
    metrics.HTTP_ERRORS.labels(str(exc.status), exc.code).inc()
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    rid = logs.request_id.get()
    if rid:  # the same id as the X-Request-ID header and the server's log lines
        body["request_id"] = rid
    headers = {"Retry-After": str(exc.details["retry_after"])} if "retry_after" in exc.details else None
    if exc.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return json_response({"error": body}, exc.status, headers)


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
                if endpoint.body is not None and not endpoint.raw_body:
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
    path = _path_params(request)
    if endpoint.reads_only and (endpoint.raw_body or not services.settings.is_sqlite):
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
    """Authorize, then read the input, run the handler and render its response, in one transaction
    (`begin=False`: the caller commits the session, if one was opened).

    Who is calling is settled before the body is read: a stranger learns nothing from validation errors.
    """
    async with ctx.session.begin() if begin else contextlib.nullcontext():
        await _authorize(ctx, endpoint)
        body = None
        if endpoint.body is not None and not endpoint.raw_body:
            body = ctx.body = parse_json_body(await read_json(request), endpoint.body)
        if endpoint.query is not None:
            ctx.query = _parse_query(request, endpoint.query)
        key = request.headers.get("idempotency-key") if endpoint.idempotent else None
        if key is not None and body is not None:
            stored = await begin_idempotent(ctx, key, idempotency.fingerprint(request.url.path, _canonical(body)))
            if stored is not None:
                return stored
        result = await endpoint.handler(ctx)
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


async def begin_idempotent(ctx: Ctx, key: str, print_: str) -> Response | None:
    """The stored response for a retried request, or None (and the key is remembered) for a new one."""
    idempotency.check_key(key)
    assert ctx.member is not None, "idempotency keys are per member"
    stored = await idempotency.stored_response(ctx.session, ctx.member.user_id, key, print_)
    if stored is not None:
        status, payload = stored
        return Response(payload, status_code=status, media_type="application/json", headers={"Idempotent-Replayed": "true"})
    ctx.idempotency = (key, print_)
    return None


def _canonical(body: BaseModel) -> bytes:
    return orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def _path_params(request: Request) -> dict[str, Any]:
    params = dict(request.path_params)
    for key, value in params.items():
        if isinstance(value, int) and not 1 <= value <= MAX_ID:
            raise NotFound("not_found", "no such item")
    return params


async def read_body(request: Request) -> bytes:
    """The JSON endpoints' body, read once and kept (the pipeline reads it before any session opens;
    the handler's `read_json` then finds it)."""
    cached = getattr(request.state, "json_body", None)
    if cached is None:
        cached = request.state.json_body = await read_limited(request, limits.MAX_JSON_BODY_BYTES)
    return cached


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it grows past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        request.state.unread_body = True
        raise PayloadTooLarge("body_too_large", f"request body over {limit} bytes", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            request.state.unread_body = True
            raise PayloadTooLarge("body_too_large", f"request body over {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> bytes:
    """The body as JSON bytes (`{}` when empty), after its media type is checked."""
    raw = await read_body(request)
    if not raw.strip():
        return b"{}"
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in {"application/json", ""}:
        raise BadRequest("unsupported_media_type", "send the body as application/json")
    return raw


def parse_json_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    """Validate JSON bytes against a body model, with the API's error codes."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    items = request.query_params.multi_items()
    data: dict[str, str] = {}
    for key, value in items:
        if key in data:
            raise ValidationFailed("validation_failed", f"query parameter {key!r} given twice", field=key)
        if "\x00" in value:
            raise ValidationFailed("validation_failed", f"query parameter {key!r} contains NUL", field=key)
        data[key] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _validation_error(exc: ValidationError) -> FeedsError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(e["type"] in {"json_invalid", "json_type"} for e in errors):
        return BadRequest("malformed_json", "the request body is not valid JSON")
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "type": e["type"], "message": e["msg"]}
        for e in errors
    ]
    first = fields[0]
    return ValidationFailed("validation_failed", f"{first['field']}: {first['message']}", errors=fields)


async def _authorize(ctx: Ctx, endpoint: Endpoint) -> None:
    if endpoint.access == PUBLIC:
        await _optional_user(ctx)
        return
    if endpoint.access == INTEGRATION:
        await _integration(ctx)
        return
    if endpoint.access == MEMBER:
        await _member(ctx, endpoint.permission, lean=ctx.opened_session is None)
        return
    await _user(ctx)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def user_for_token(ctx: Ctx, token: str) -> tuple[AuthToken, User] | None:
    """The live token and its user, or None when unknown, revoked or expired."""
    if not token.startswith(tokens.BEARER_PREFIX) or len(token) > 200:
        return None
    row = (
        await ctx.session.execute(
            select(AuthToken, User)
            .join(User, User.id == AuthToken.user_id)
            .where(AuthToken.token_hash == tokens.hash_secret(token))
        )
    ).first()
    if row is None:
        return None
    auth, user = row
    if auth.revoked_at is not None or auth.expires_at <= ctx.services.clock():
        return None
    return auth, user


async def _optional_user(ctx: Ctx) -> None:
    token = bearer_token(ctx.request)
    if token:
        found = await user_for_token(ctx, token)
        if found:
            ctx.token, ctx.user = found


async def _user(ctx: Ctx) -> None:
    token = bearer_token(ctx.request)
    if not token:
        raise Unauthenticated("unauthenticated", "sign in and send 'Authorization: Bearer <token>'")
    found = await user_for_token(ctx, token)
    if not found:
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    ctx.token, ctx.user = found


async def _org_from_path(ctx: Ctx) -> Org:
    slug = ctx.path.get("slug")
    org = (await ctx.session.execute(select(Org).where(Org.slug == slug))).scalar_one_or_none() if slug else None
    if org is None:
        raise NotFound("org_not_found", "no such org")
    set_org(ctx.session, org.id)
    ctx.org = org
    return org


def request_address(ctx: Ctx) -> str | None:
    peer = ctx.request.client.host if ctx.request.client else None
    return network.client_address(peer, ctx.request.headers.get("x-forwarded-for"), ctx.services.settings.trusted_proxies)


def check_ip(ctx: Ctx, org: Org) -> None:
    """F-SEC-4: an org that restricts access by IP refuses every request from elsewhere."""
    if org.ip_allowlist and not network.allowed(request_address(ctx), org.ip_allowlist):
        raise Forbidden("ip_not_allowed", "this org does not accept requests from your network")


# Built once: this runs on nearly every request.
_CALLER = (
    select(AuthToken, User, Org, Membership, Profile)
    .join(User, User.id == AuthToken.user_id)
    .outerjoin(Org, Org.slug == bindparam("slug"))
    .outerjoin(Membership, (Membership.org_id == Org.id) & (Membership.user_id == User.id))
    .outerjoin(Profile, Profile.id == Membership.profile_id)
    .where(AuthToken.token_hash == bindparam("token_hash"))
    .execution_options(**ORG_LOOKUP)
)


async def _member(ctx: Ctx, permission: str | None, lean: bool = False) -> None:
    """The caller's token, account, org, membership and profile, in one query (the busiest path).
    `lean`: the same query straight to the driver, outside the request's session (store/callers.py)."""
    token = bearer_token(ctx.request)
    if not token:
        raise Unauthenticated("unauthenticated", "sign in and send 'Authorization: Bearer <token>'")
    if not token.startswith(tokens.BEARER_PREFIX) or len(token) > 200:
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    params = {"token_hash": tokens.hash_secret(token), "slug": ctx.path.get("slug")}
    if lean and not ctx.services.settings.is_sqlite:
        row = await find_caller(ctx.services.engine, params["token_hash"], params["slug"])
    elif lean:
        async with ctx.services.read_sessions() as session:  # closed before the handler runs
            row = (await session.execute(_CALLER, params)).first()
    else:
        row = (await ctx.session.execute(_CALLER, params)).first()
    if row is None:
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    auth, user, org, membership, profile = row
    if auth.revoked_at is not None or auth.expires_at <= ctx.services.clock():
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    ctx.token, ctx.user = auth, user
    if org is None or membership is None or profile is None:
        # Not a member answers exactly as an org that does not exist.
        raise NotFound("org_not_found", "no such org")
    if ctx.opened_session is not None:  # else set when it opens (`_run_on_demand`)
        set_org(ctx.opened_session, org.id)
    ctx.org = org
    check_ip(ctx, org)
    ctx.member = Member(user, membership, perms.effective_permissions(profile.permissions, membership.is_super_admin))
    if permission:
        ctx.member.require(permission)


async def _integration(ctx: Ctx) -> None:
    """The token is checked before the org, so a bad token answers the same for every slug."""
    token = bearer_token(ctx.request)
    if not token or not token.startswith(tokens.INTEGRATION_PREFIX) or len(token) > 200:
        raise Unauthenticated("unauthenticated", "send the integration token as 'Authorization: Bearer <token>'")
    allow_cross_org(ctx.session)
    integration = (
        await ctx.session.execute(select(Integration).where(Integration.token_hash == tokens.hash_secret(token)))
    ).scalar_one_or_none()
    if integration is None or integration.revoked_at is not None:
        raise Unauthenticated("invalid_token", "the integration token is unknown or revoked")
    org = await _org_from_path(ctx)
    if integration.org_id != org.id:
        raise Unauthenticated("invalid_token", "the integration token is unknown or revoked")
    check_ip(ctx, org)
    ctx.integration = integration

