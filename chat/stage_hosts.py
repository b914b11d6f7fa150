"""Which server process hosts each session's stage, and how the other processes reach it.

A session's media must live in one process: its speakers' and viewers' peer connections, the
forwarder between them, its recording. With one process (a `memory://` bus) that is this one and
every call runs here. With several (a `redis://` bus), the first process asked to publish or watch
in a session claims it in Redis (`dais:stage-host:<session>`, a lease the host renews while the
stage lasts) and the others relay that session's media calls to it over Redis pub/sub, one channel
per process. The host sends its renegotiation offers back the same way to the process holding the
viewer's socket. Only signalling crosses processes: WebRTC goes straight between the browser and
the host's own UDP sockets, whose candidates are the ones in the host's SDP.

A host that is gone (its channel has no subscriber) loses its lease at once and the call is made
again, so the next process to be asked hosts the stage from then on; the people who were on the old
host publish or watch again when their pages reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from app.errors import DomainError
from streaming.errors import RELAY_FAILED, UNAVAILABLE, MediaError
from streaming.server import MediaServer

log = logging.getLogger("dais.chat.stage_hosts")

HOST_KEY = "dais:stage-host:{}"
NODE_CHANNEL = "dais:stage-node:{}"
STATE_KEY = "dais:stage-state:{}"  # who is live and muted, for a host that takes over
STATE_TTL = 24 * 3600  # seconds
LEASE_MS = 30_000  # a host that stops renewing (it died) is replaced after this at the latest
RENEW_EVERY = 10.0  # seconds
CALL_TIMEOUT = 10.0  # seconds for the host to answer a relayed call

# What may be relayed: MediaServer's coroutines, by name.
CALLS = frozenset(
    {"publish", "watch", "answer", "set_live", "set_muted", "end_session", "close_connection"}
)
# Calls that never make a process host a session (there is nothing to host for them).
NO_CLAIM = frozenset({"describe", "close_connection"})

# Redis scripts: renew or give up a lease only while it is still this process's.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

Stage = dict[str, Any]  # MediaServer.stage(): who publishes, who is live, what is muted
Deliver = Callable[[str, dict[str, Any]], bool]  # (connection id, offer) -> the socket is here


class StageHosts:
    """Runs each session's media calls on the process hosting its stage, here or elsewhere.

    `call()` returns the call's result and the stage as the host has it afterwards, so what the
    gateway announces is always the host's view.
    """

    def __init__(self, media: MediaServer, deliver: Deliver, redis: Any = None) -> None:
        self.media = media
        self.node = uuid.uuid4().hex
        self._deliver = deliver
        self._redis = redis
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._hosted: set[str] = set()  # sessions whose lease this process holds
        self._remote_sockets: dict[str, str] = {}  # connection id -> its process, for offers
        self._media_sockets: set[str] = set()  # sockets of this process that published or watched
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, session_id: str, op: str, /, **args: Any) -> tuple[Any, Stage]:
        """Run MediaServer's `op(**args)` for `session_id` on its host ("describe": nothing)."""
        if op not in CALLS and op != "describe":
            raise ValueError(f"not a stage call: {op}")
        if op in ("publish", "watch"):
            self._media_sockets.add(args["connection_id"])
        for _ in range(2):
            host = await self._host(session_id, claim=op not in NO_CLAIM)
            if host is None or host == self.node:
                return await self._run(session_id, op, args, caller=self.node)
            reply = await self._relay(host, session_id, op, args)
            if reply is not None:
                return reply
            # Nobody listens on the host's channel: it is gone. Its lease is released; again.
        raise MediaError(UNAVAILABLE, "no process could host this session's stage; try again")

    async def _run(
        self, session_id: str, op: str, args: dict[str, Any], *, caller: str
    ) -> tuple[Any, Stage]:
        connection_id = args.get("connection_id")
        if connection_id is not None:
            if caller == self.node or op == "close_connection":
                self._remote_sockets.pop(connection_id, None)
            else:
                self._remote_sockets[connection_id] = caller
        result: Any = None
        if op == "close_connection":
            # Result: whether the stage's publishers changed (the socket held one).
            before = self.media.stage(session_id)["publishers"]
            await self.media.close_connection(str(connection_id))
            result = self.media.stage(session_id)["publishers"] != before
        elif op != "describe":
            result = await getattr(self.media, op)(**args)
        stage = self.media.stage(session_id)
        if op != "describe":
            await self._remember(session_id, stage, ended=op == "end_session")
        return result, stage

    # -- what a new host starts from -----------------------------------------------------------

    async def _remember(self, session_id: str, stage: Stage, *, ended: bool) -> None:
        """Keep who is live and what is muted in Redis, for a host that takes over."""
        if self._redis is None:
            return
        key = STATE_KEY.format(session_id)
        if ended:
            await self._redis.delete(key)
            return
        state = {
            p["person_id"]: {"live": p["live"], "muted": p["muted"]} for p in stage["publishers"]
        }
        await self._redis.set(key, json.dumps(state), ex=STATE_TTL)

    async def _restore(self, session_id: str) -> None:
        """A new host (the last one died or stopped) starts from the stage as it was: who was
        live stays live, muted stays muted, and they resume when they publish again."""
        assert self._redis is not None
        saved = await self._redis.get(STATE_KEY.format(session_id))
        if not saved:
            return
        for person_id, state in json.loads(saved).items():
            if state.get("live"):
                await self.media.set_live(session_id=session_id, person_id=person_id, live=True)
            for kind, muted in (state.get("muted") or {}).items():
                if muted:
                    await self.media.set_muted(
                        session_id=session_id, person_id=person_id, kind=kind, muted=True
                    )

    async def close_connection(
        self, session_id: str, connection_id: str
    ) -> tuple[bool, Stage] | None:
        """A socket of this process closed: its peer connections close on the stage's host.
        (Whether the stage's publishers changed, and the stage); None if it held no media."""
        if connection_id not in self._media_sockets:
            return None
        self._media_sockets.discard(connection_id)
        changed, stage = await self.call(
            session_id, "close_connection", connection_id=connection_id
        )
        return bool(changed), stage

    def send_offer(self, connection_id: str, message: dict[str, Any]) -> None:
        """The host's renegotiation offer for one viewer: to its socket, here or on its process."""
        node = self._remote_sockets.get(connection_id)
        if node is None or self._redis is None:
            self._deliver(connection_id, message)
            return
        body = {"kind": "offer", "connection_id": connection_id, "message": message}
        self._spawn(self._redis.publish(NODE_CHANNEL.format(node), json.dumps(body)))

    # -- hosting -------------------------------------------------------------------------------

    async def _host(self, session_id: str, *, claim: bool) -> str | None:
        """The process hosting `session_id` (None: nobody, and not claimed)."""
        if self._redis is None:
            return self.node
        key = HOST_KEY.format(session_id)
        host: str | None = await self._redis.get(key)
        if host is None and claim:
            if await self._redis.set(key, self.node, nx=True, px=LEASE_MS):
                host = self.node
                await self._restore(session_id)
            else:
                host = await self._redis.get(key)
        if host == self.node:
            self._hosted.add(session_id)
        return host

    async def _renew(self) -> None:
        """Keep this process's leases while it hosts their stages; give up the others."""
        assert self._redis is not None
        while True:
            await asyncio.sleep(RENEW_EVERY)
            for session_id in list(self._hosted):
                key = HOST_KEY.format(session_id)
                try:
                    if not self.media.hosts(session_id):
                        self._hosted.discard(session_id)
                        await self._redis.eval(_RELEASE, 1, key, self.node)
                    elif not await self._redis.eval(_RENEW, 1, key, self.node, LEASE_MS):
                        self._hosted.discard(session_id)
                        log.warning("lost the lease on a stage this process hosts")
                except Exception as error:  # Redis away: try again next round
                    log.warning("could not renew stage leases: %r", error)

    # -- the relay -----------------------------------------------------------------------------

    async def _relay(
        self, host: str, session_id: str, op: str, args: dict[str, Any]
    ) -> tuple[Any, Stage] | None:
        """Run the call on `host`; None if `host` no longer listens (its lease is released)."""
        assert self._redis is not None
        request_id = uuid.uuid4().hex
        waiting = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiting
        body = {
            "kind": "call",
            "id": request_id,
            "reply_to": self.node,
            "session_id": session_id,
            "op": op,
            "args": args,
        }
        try:
            if not await self._redis.publish(NODE_CHANNEL.format(host), json.dumps(body)):
                await self._redis.eval(_RELEASE, 1, HOST_KEY.format(session_id), host)
                return None
            try:
                reply = await asyncio.wait_for(waiting, CALL_TIMEOUT)
            except TimeoutError:
                raise MediaError(
                    UNAVAILABLE, "the process hosting this session's stage did not answer"
                ) from None
        finally:
            self._waiting.pop(request_id, None)
        error = reply.get("error")
        if error is not None:
            raise MediaError(error["code"], error["message"])
        return reply["result"], reply["stage"]

    def _received(self, data: str) -> None:
        message = json.loads(data)
        kind = message.get("kind")
        if kind == "call":
            self._spawn(self._serve(message))
        elif kind == "reply":
            waiting = self._waiting.get(message["id"])
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
        elif kind == "offer":
            self._deliver(message["connection_id"], message["message"])

    async def _serve(self, message: dict[str, Any]) -> None:
        """Run a call relayed from another process and send it the outcome."""
        assert self._redis is not None
        reply: dict[str, Any] = {"kind": "reply", "id": message["id"]}
        op = message["op"]
        try:
            if op not in CALLS and op != "describe":
                raise MediaError(RELAY_FAILED, f"not a stage call: {op}")
            result, stage = await self._run(
                message["session_id"], op, message["args"], caller=message["reply_to"]
            )
            reply.update(result=result, stage=stage)
        except DomainError as error:
            reply["error"] = {"code": error.code, "message": error.message}
        except Exception:
            log.exception("a relayed stage call failed")
            reply["error"] = {"code": RELAY_FAILED, "message": "the stage call failed"}
        await self._redis.publish(NODE_CHANNEL.format(message["reply_to"]), json.dumps(reply))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        try:
                            self._received(message["data"])
                        except Exception:
                            log.exception("could not handle a stage relay message")
            except Exception as error:  # the connection to Redis dropped: redis-py reconnects
                log.warning("stage relay: Redis error (%r); listening again", error)
                await asyncio.sleep(1.0)


@asynccontextmanager
async def open_stage_hosts(
    bus_url: str, media: MediaServer, deliver: Deliver
) -> AsyncIterator[StageHosts]:
    """Stage hosting for this process: local only on a `memory://` bus, relayed over Redis on a
    `redis://` one (its own connection, subscribed before it is returned); leases released on exit."""
    if not bus_url.startswith(("redis://", "rediss://")):
        yield StageHosts(media, deliver)
        return
    from redis.asyncio import Redis

    client = Redis.from_url(bus_url, decode_responses=True)
    hosts = StageHosts(media, deliver, client)
    pubsub = client.pubsub()
    await pubsub.subscribe(NODE_CHANNEL.format(hosts.node))
    tasks = [
        asyncio.create_task(hosts._listen(pubsub), name="dais-stage-relay"),
        asyncio.create_task(hosts._renew(), name="dais-stage-leases"),
    ]
    try:
        yield hosts
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for session_id in hosts._hosted:
            with suppress(Exception):
                await client.eval(_RELEASE, 1, HOST_KEY.format(session_id), hosts.node)
        await pubsub.aclose()
        await client.aclose()
