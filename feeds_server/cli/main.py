"""The `feeds-server` command: serve, migrate, demo, config, rules, routes, export, import, user."""

from __future__ import annotations

import argparse
import gc
import asyncio
import json
import logging
import sys

from feeds_server import limits
from feeds_server.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feeds-server", description="Real-time collaboration feeds for CRMs.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database, then serve HTTP and WebSocket")
    serve.add_argument("--host", help="address to listen on (default FEEDS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default FEEDS_PORT or 8000)")
    serve.add_argument("--no-migrate", action="store_true", help="do not run migrations first")
    serve.add_argument("--demo", action="store_true", help="on an empty database, create the demo account and org")

    sub.add_parser("migrate", help="bring the database schema up to date")
    notifier = sub.add_parser("notifier", help="run the worker: mention and invitation emails, web pushes, notes back to the CRM, file previews")
    notifier.add_argument("--burst", action="store_true", help="send what is due, then exit")
    notifier.add_argument("--failed", action="store_true", help="list the dead letters (emails, web pushes, webhook calls and file previews that failed for good), then exit")
    notifier.add_argument(
        "--retry", action="append", metavar="OUTBOX:ID|all", help="put dead letters back in their outbox (email:12, push:5, webhook:7, preview:3, all), then exit"
    )
    previews_cmd = sub.add_parser("previews", help="file previews: queue thumbnails for files stored before previews existed")
    previews_cmd.add_argument("--backfill", action="store_true", required=True, help="queue a preview job for every image or PDF without one")
    previews_cmd.add_argument("--org", help="only this org (its access URL slug); default every org")
    sub.add_parser("demo", help="on an empty database, create the demo account and org, and print how to sign in")
    sub.add_parser("config", help="print the settings in force (secrets masked)")
    rules_cmd = sub.add_parser("rules", help="auto-follow rule files: validate, apply to an org")
    rules_sub = rules_cmd.add_subparsers(dest="rules_command", required=True)
    rules_validate = rules_sub.add_parser("validate", help="check a rule file (rules/schema.json)")
    rules_validate.add_argument("file")
    rules_apply = rules_sub.add_parser("apply", help="copy a rule file's rules into one org")
    rules_apply.add_argument("--org", required=True, help="the org's access URL slug")
    rules_apply.add_argument("file")
    sub.add_parser("routes", help="print the HTTP API's routes as a Markdown table (docs/api.md holds it)")
    export_cmd = sub.add_parser("export", help="write an org's data and files to one archive (docs/operations.md)")
    export_cmd.add_argument("--org", required=True, help="the org's access URL slug")
    export_cmd.add_argument("--out", help="the archive to write (default SLUG-export.zip)")
    import_cmd = sub.add_parser("import", help="load an org export into another existing org, with a mapping of users")
    import_cmd.add_argument("--org", required=True, help="the slug of the org to import into")
    import_cmd.add_argument("--users", required=True, help="JSON object: source email (or id) -> target email")
    import_cmd.add_argument("--map-unknown-to", metavar="EMAIL", help="the target account of everyone the mapping leaves out")
    import_cmd.add_argument("archive")
    user_cmd = sub.add_parser("user", help="a person's data (GDPR): export it, erase it")
    user_sub = user_cmd.add_subparsers(dest="user_command", required=True)
    user_export = user_sub.add_parser("export", help="write everything of one account, in every org, as JSON")
    user_export.add_argument("--email", required=True)
    user_export.add_argument("--out", help="the file to write (default: standard output)")
    user_erase = user_sub.add_parser("erase", help="erase one account and its data in every org (cannot be undone)")
    user_erase.add_argument("--email", required=True)
    user_erase.add_argument("--yes", action="store_true", help="confirm the erasure")

    args = parser.parse_args(argv)
    settings = Settings.from_env()
    from feeds_server.runtime.logs import configure

    configure(settings.log_level)

    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("database is up to date")
        return 0
    if args.command == "demo":
        asyncio.run(_migrate(settings))
        asyncio.run(_demo(settings))
        return 0
    if args.command == "config":
        print(json.dumps(settings.describe(), indent=2))
        return 0
    if args.command == "notifier" and (args.failed or args.retry):
        from feeds_server.cli import notifier

        return asyncio.run(notifier.failed(settings, args.retry or []))
    if args.command == "notifier":
        return asyncio.run(_notifier(settings, args.burst))
    if args.command == "previews":
        from feeds_server.cli import previews

        return asyncio.run(previews.backfill(settings, args.org))
    if args.command == "rules":
        from feeds_server.cli import rules

        if args.rules_command == "validate":
            return rules.validate(args.file)
        return asyncio.run(rules.apply(settings, args.org, args.file))
    if args.command in ("export", "import", "user"):
        return asyncio.run(_data(settings, args))
    if args.command == "routes":
        from feeds_server.api.app import routes_markdown

        print(routes_markdown())
        return 0
    if args.command == "serve":
        return _serve(settings, args)
    parser.print_help()
    return 2


async def _migrate(settings: Settings) -> None:
    from feeds_server.store.db import create_engine
    from feeds_server.store.migrate import upgrade

    engine = create_engine(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _data(settings: Settings, args: argparse.Namespace) -> int:
    from feeds_server.cli import data

    if args.command == "export":
        return await data.export_org(settings, args.org, args.out)
    if args.command == "import":
        return await data.import_org(settings, args.org, args.archive, args.users, args.map_unknown_to)
    if args.user_command == "export":
        return await data.export_user(settings, args.email, args.out)
    return await data.erase_user(settings, args.email, args.yes)


async def _notifier(settings: Settings, burst: bool) -> int:
    import signal

    from feeds_server.notify import worker
    from feeds_server.runtime.services import Services

    services = Services.build(settings)
    counts_broker = None
    if settings.redis_url:  # the unread counts of what the worker notifies reach live clients (realtime/counts.py)
        from feeds_server.realtime.broker_redis import RedisBroker
        from feeds_server.realtime.counts import counts_sink

        counts_broker = RedisBroker(settings.redis_url, settings.redis_prefix)
        services.event_sinks.append(counts_sink(services, counts_broker))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from feeds_server.actions.webhooks import deliver_webhooks
    from feeds_server.notify import digests
    from feeds_server.notify import push_worker
    from feeds_server.notify.previews import make_previews

    try:
        if burst:  # the digests and dormancy notices due now first, so that this run sends them
            await digests.run(services, burst=True)
        # Emails, web pushes, the CRM note webhooks and file previews: four outboxes, one worker
        # process; and its periodic work (digests, dormancy notices) while it runs.
        sent, *_ = await asyncio.gather(
            worker.run(services, burst=burst, stop=stop), deliver_webhooks(services, burst=burst, stop=stop),
            make_previews(services, burst=burst, stop=stop), push_worker.run(services, burst=burst, stop=stop), *([] if burst else [digests.run(services, stop=stop)]),
        )
    finally:
        if counts_broker is not None:
            await counts_broker.close()
        await services.close()
    logging.getLogger("feeds_server.notifier").info("notifier stopped after sending %d emails", sent)
    return 0


async def _demo(settings: Settings) -> None:
    from feeds_server.cli.demo import ensure_demo

    message = await ensure_demo(settings)
    print(message)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from feeds_server.api.app import create_app
    from feeds_server.api.http_wire import http_protocol
    from feeds_server.realtime.wire import WireProtocol

    if not args.no_migrate:
        asyncio.run(_migrate(settings))
    if args.demo:
        asyncio.run(_demo(settings))
    host = args.host or settings.host
    port = args.port or settings.port
    app = create_app(settings)
    # Batches of posts and record events allocate many short-lived objects: collect young objects
    # less often, and never rescan what exists at start-up (the app, its routes, its models).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    from feeds_server.runtime.shutdown import GracefulServer

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_protocol(settings),  # httptools, with bounds on head size and read times (api/http_wire.py)
        ws=WireProtocol,  # uvicorn's "websockets-sansio", plus shared frames (realtime/wire.py)
        ws_per_message_deflate=settings.ws_compression,
        ws_max_size=limits.MAX_WS_FRAME_BYTES,
        ws_ping_interval=None,  # the Centrifuge protocol pings at the application level
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
        access_log=False,  # requests are logged as JSON with their request id (feeds_server/runtime/logs.py)
        log_config=None,
    )
    server = GracefulServer(config, settings.shutdown_timeout)
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl-C: the shutdown has run; uvicorn re-raised the signal
        pass
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
