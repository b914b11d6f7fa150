"""The FastAPI application: lifespan-built resources, routers, and the one place errors become HTTP."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.agenda.router import router as agenda_router
from app.auth.router import router as auth_router
from app.csrf import OriginCheck
from app.db import make_engine, make_sessionmaker
from app.deps import COOKIE
from app.errors import DomainError, RateLimited
from app.event.router import router as event_router
from app.invites.router import router as invites_router
from app.nul import RefuseNul
from app.pages import install as install_pages
from app.people.router import router as people_router
from app.recordings.router import router as recordings_router
from app.recordings.service import recording_store
from app.settings import Settings
from app.throttle import open_throttles
from chat.gateway import open_gateway
from chat.redis_link import open_link
from chat.router import router as live_router
from chat.stage import media_offers, offer_deliverer
from chat.stage_hosts import open_stage_hosts
from streaming.local_media import LocalMedia
from streaming.server import MediaServer


def error_body(code: str, message: str, fields: list[dict[str, str]] | None = None) -> dict:
    error: dict[str, object] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for problem in exc.errors():
        loc = [str(part) for part in problem.get("loc", ())]
        if loc and loc[0] in {"body", "query", "path", "header", "cookie"} and len(loc) > 1:
            loc = loc[1:]
        fields.append({"field": ".".join(loc), "message": str(problem.get("msg", "invalid"))})
    names = ", ".join(f["field"] for f in fields) or "request"
    return JSONResponse(
        error_body("request.invalid", f"Please check: {names}.", fields), status_code=422
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "http.not_found", 405: "http.method_not_allowed"}.get(
        exc.status_code, "http.error"
    )
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = make_engine(settings.resolved_database_url)
            stack.push_async_callback(engine.dispose)
            app.state.engine = engine
            app.state.sessionmaker = make_sessionmaker(engine)
            # Sign-in, registration and join throttles (in Redis when the bus is Redis).
            app.state.throttles = await stack.enter_async_context(
                open_throttles(
                    settings.bus_url, limits=settings.throttles, secret=settings.signing_key
                )
            )
            # The one link to the other processes (Redis, or none on `memory://`), shared by the
            # event bus and stage hosting; closed last.
            app.state.link = await stack.enter_async_context(open_link(settings.bus_url))
            # Built before the gateway, closed after it: every peer connection ends with it.
            app.state.media = MediaServer(
                ice_servers=settings.ice_servers,
                recordings_dir=settings.recordings_dir,
                max_peers_per_person=settings.media_max_peers_per_person,
                reconnect_grace=settings.media_reconnect_grace_seconds,
                max_bitrate_kbps=settings.media_max_bitrate_kbps,
                on_offer=media_offers(lambda: app.state.stages),
                on_recording=recording_store(app.state.sessionmaker),
            )
            stack.push_async_callback(app.state.media.close)
            # Which process hosts each session's stage (this one, or another over Redis).
            app.state.stages = await stack.enter_async_context(
                open_stage_hosts(
                    app.state.link,
                    LocalMedia(app.state.media),
                    offer_deliverer(lambda: app.state.live),
                )
            )
            app.state.live = await stack.enter_async_context(
                open_gateway(
                    settings=settings,
                    sessionmaker=app.state.sessionmaker,
                    throttles=app.state.throttles,
                    link=app.state.link,
                    state=app.state,
                )
            )
            # What is built by now (modules, the app, the media server and its checks) lives as
            # long as the process: the garbage collector's full collections need not walk it
            # again. Without this, a burst of viewers arriving set off a 200 ms collection of the
            # whole heap that stalled every room of the process (bench/live.py's storm).
            gc.collect()
            gc.freeze()
            stack.callback(gc.unfreeze)
            yield

    app = FastAPI(
        title="Dais",
        summary="A live virtual-conference platform: agenda, stage, green room, moderated Q&A.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(OriginCheck, origins=settings.origins, cookie=COOKIE)
    app.add_middleware(RefuseNul)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for router in (
        auth_router,
        event_router,
        agenda_router,
        people_router,
        invites_router,
        recordings_router,
        live_router,
    ):
        app.include_router(router)
    install_pages(app)
    return app
