"""The `dais` command: serve, migrate, demo, create-organiser."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from app.db import make_engine, make_sessionmaker
from app.errors import DomainError
from app.logs import log_config
from app.migrate import upgrade
from app.serving import ServingConfig, http_protocol, run
from app.settings import Settings


async def _load_demo(settings: Settings) -> list[str]:
    from app.demo import ORGANISER_EMAIL, demo_invite_links, demo_password, load_demo

    engine = make_engine(settings.resolved_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            event = await load_demo(db, settings)
            links = await demo_invite_links(db, settings, event)
    finally:
        await engine.dispose()
    base = settings.base_url.rstrip("/")
    lines = [
        f"  Event:              {base}/e/{event.slug}",
        f"  API documentation:  {base}/docs",
        f"  Organiser sign-in:  {base}/organiser  ({ORGANISER_EMAIL} / {demo_password(settings)})",
    ]
    lines += [f"  {link.label + ':':<40}{link.url}" for link in links]
    return lines


def _serve(args: argparse.Namespace) -> None:
    if args.host != "127.0.0.1" or args.port != 8000:
        os.environ.setdefault("DAIS_BASE_URL", f"http://{args.host}:{args.port}")
    settings = Settings()
    if args.workers > 1 and not settings.bus_url.startswith(("redis://", "rediss://")):
        # Each worker is a process of its own: chat, Q&A and the stage reach across them only
        # through Redis; on the in-process bus each would serve a different half of the room.
        sys.exit(
            "Dais: --workers above 1 needs DAIS_BUS_URL=redis://host:6379/0 (the processes share "
            "the room's events and each session's stage through Redis)."
        )
    upgrade(settings.resolved_database_url)
    print(f"Dais: database ready ({settings.resolved_database_url.split('://')[0]})", flush=True)
    if args.demo:
        print("Dais: demo event loaded. Open these links (invite links work once):")
        print("\n".join(asyncio.run(_load_demo(settings))), flush=True)
    print(f"Dais: serving on http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    run(
        ServingConfig(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=log_config(),
            # Behind a trusted reverse proxy the client's address (for throttles only) is the
            # one it forwards; without one, headers claiming an address are ignored.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            # Each request head must be whole within this long of its first byte (of connecting,
            # for the first), and no larger than the limit (431): a slow sender cannot hold a
            # connection, whichever parser runs (app/serving.py).
            http=http_protocol(settings.http_parser),
            request_head_seconds=settings.http_request_head_seconds,
            h11_max_incomplete_event_size=settings.http_max_request_head_bytes,
            # Idle keep-alive connections are closed after this; a proxy in front must give up
            # on its idle connections to Dais sooner, or it sends requests into closing sockets.
            timeout_keep_alive=settings.http_keep_alive_seconds,
            # Past this many open connections (live sockets included) HTTP requests get 503 at
            # once, rather than the process running out of file descriptors or memory.
            limit_concurrency=settings.http_max_connections,
            # The live gateway serializes each event once for every socket; per-socket
            # compression would undo that. Frames over the largest the gateway takes (a
            # signalling frame carrying a 64 KiB SDP) are refused by uvicorn itself, before
            # they are buffered whole; the gateway then applies its own, smaller limit to other
            # frames (1009).
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            ws_max_size=settings.live_max_signal_frame_bytes + 1024,
            # Pings find sockets whose other end has gone (a closed laptop, a dropped network),
            # so they stop counting as watching and their peer connections close; they also
            # keep proxies from timing out a quiet socket.
            ws_ping_interval=settings.live_ping_every_seconds,
            ws_ping_timeout=settings.live_ping_timeout_seconds,
            # On SIGTERM requests under way get this long; live sockets close at once (1012)
            # and pages reconnect, to another process or to this one restarted.
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    )


def _migrate(_: argparse.Namespace) -> None:
    settings = Settings()
    upgrade(settings.resolved_database_url)
    print("Dais: database migrated to the latest version.")


def _demo(_: argparse.Namespace) -> None:
    settings = Settings()
    upgrade(settings.resolved_database_url)
    print("\n".join(asyncio.run(_load_demo(settings))))


async def _create_organiser(settings: Settings, email: str, name: str, password: str) -> None:
    from app.people.service import create_organiser

    engine = make_engine(settings.resolved_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            await create_organiser(db, email=email, name=name, password=password)
    finally:
        await engine.dispose()


def _organiser(args: argparse.Namespace) -> None:
    settings = Settings()
    upgrade(settings.resolved_database_url)
    password = args.password or os.environ.get("DAIS_ORGANISER_PASSWORD")
    if not password:
        password = getpass.getpass("Password (at least 10 characters): ")
    try:
        asyncio.run(_create_organiser(settings, args.email, args.name, password))
    except DomainError as error:
        sys.exit(f"dais: {error.message}")
    print(f"Dais: organiser {args.email} created; sign in at {settings.base_url}/organiser")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dais", description="Dais, a live conference platform.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate the database, then serve Dais")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="load the demo event and print links")
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="bring the database to the latest version").set_defaults(
        run=_migrate
    )
    commands.add_parser("demo", help="load the demo event and print its links").set_defaults(
        run=_demo
    )
    organiser = commands.add_parser("create-organiser", help="add an organiser account")
    organiser.add_argument("--email", required=True)
    organiser.add_argument("--name", required=True)
    organiser.add_argument("--password", help="default: $DAIS_ORGANISER_PASSWORD, else asked")
    organiser.set_defaults(run=_organiser)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
