"""Which server process hosts each session's stage, and how the other processes reach it.

A session's media must live in one process: its speakers' and viewers' peer connections, the
forwarder between them, its recording. With one process (a `memory://` bus) that is this one and
every call runs here. With several (a `redis://` bus), the first process asked to publish or watch
in a session claims it in Redis (`dais:stage-host:<session>`, a lease the host renews while the
stage lasts) and the others relay that session's media calls to it over Redis pub/sub, one channel
per process. What crosses is typed (`streaming.port`): a command by its class (only the port's
registered command types are run; there is no calling by method name), the result and the stage
snapshot as plain data, and a refusal as the same domain error class with its code and field. The
host sends its renegotiation offers (`OfferToViewer`), and a speaker's layers to send
(`LayersToPublisher`, dynacast), back the same way to the process holding the
viewer's socket. Only signalling crosses processes: WebRTC goes straight between the browser and
the host's own UDP sockets, whose candidates are the ones in the host's SDP.

A host that is gone (its channel has no subscriber) loses its lease at once and the call is made
again, so the next process to be asked hosts the stage from then on; the people who were on the old
host publish or watch again when their pages reconnect.

Redis is reached through the process's one link (`chat.redis_link`), shared with the event bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from app.errors import DomainError
from chat.redis_link import Link
from streaming.errors import RELAY_FAILED, UNAVAILABLE, MediaError
from streaming.port import (
    CloseConnection,
    Command,
    Describe,
    EndSession,
    LayersToPublisher,
    LocalMediaPort,
    Mute,
    OfferToViewer,
    Outcome,
    Publish,
    Push,
    SetLive,
    StageSnapshot,
    Watch,
    decode_command,
    decode_error,
    decode_result,
    encode_command,
    encode_error,
    encode_result,
)

log = logging.getLogger("dais.chat.stage_hosts")

R = TypeVar("R")

HOST_KEY = "dais:stage-host:{}"
NODE_CHANNEL = "dais:stage-node:{}"
STATE_KEY = "dais:stage-state:{}"  # who is live and muted, for a host that takes over
STATE_TTL = 24 * 3600  # seconds
LEASE_MS = 30_000  # a host that stops renewing (it died) is replaced after this at the latest
RENEW_EVERY = 10.0  # seconds
CALL_TIMEOUT = 10.0  # seconds for the host to answer a relayed call

# Commands that never make a process host a session (there is nothing to host for them).
NO_CLAIM = (Describe, CloseConnection)

# Redis scripts: renew or give up a lease only while it is still this process's.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

Deliver = Callable[[Push], bool]  # a push -> whether its socket is in this process


class StageHosts:
    """The media port as chat uses it: each command runs on the process hosting its session's
    stage, here or elsewhere, and its `Outcome` carries the stage as the host has it afterwards,
    so what the gateway announces is always the host's view."""

    def __init__(self, local: LocalMediaPort, deliver: Deliver, link: Link | None = None) -> None:
        self.local = local  # this process's media server, through the port
        self.node = uuid.uuid4().hex
        self._deliver = deliver
        self._link = link
        self._redis: Any = link.redis if link is not None else None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._hosted: set[str] = set()  # sessions whose lease this process holds
        self._remote_sockets: dict[str, str] = {}  # connection id -> its process, for offers
        self._media_sockets: set[str] = set()  # sockets of this process that published or watched
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- commands ------------------------------------------------------------------------------

    async def run(self, command: Command[R]) -> Outcome[R]:
        """Run `command` on the process hosting its session's stage."""
        encode_command(command)  # refuses anything that is not one of the port's commands
        if isinstance(command, Publish | Watch):
            self._media_sockets.add(command.connection_id)
        session_id = command.session_id
        for _ in range(2):
            host = await self._host(session_id, claim=not isinstance(command, NO_CLAIM))
            if host is None or host == self.node:
                return await self._run(command, caller=self.node)
            outcome = await self._relay(host, command)
            if outcome is not None:
                return outcome
            # Nobody listens on the host's channel: it is gone. Its lease is released; again.
        raise MediaError(UNAVAILABLE, "no process could host this session's stage; try again")

    async def _run(self, command: Command[R], *, caller: str) -> Outcome[R]:
        connection_id: str | None = getattr(command, "connection_id", None)
        if connection_id is not None:
            if caller == self.node or isinstance(command, CloseConnection):
                self._remote_sockets.pop(connection_id, None)
            else:
                self._remote_sockets[connection_id] = caller
        outcome = await self.local.run(command)
        if not isinstance(command, Describe):
            await self._remember(outcome.stage, ended=isinstance(command, EndSession))
        return outcome

    # -- what a new host starts from -----------------------------------------------------------

    async def _remember(self, stage: StageSnapshot, *, ended: bool) -> None:
        """Keep who is live and what is muted in Redis, for a host that takes over."""
        if self._redis is None:
            return
        key = STATE_KEY.format(stage.session_id)
        if ended:
            await self._redis.delete(key)
            return
        state = {p.person_id: {"live": p.live, "muted": p.muted_kinds()} for p in stage.presenters}
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
                await self.local.run(SetLive(session_id, person_id=person_id, live=True))
            for kind, muted in (state.get("muted") or {}).items():
                if muted:
                    await self.local.run(
                        Mute(session_id, person_id=person_id, kind=kind, muted=True)
                    )

    async def close_connection(
        self, session_id: str, connection_id: str
    ) -> tuple[bool, StageSnapshot] | None:
        """A socket of this process closed: its peer connections close on the stage's host.
        (Whether the stage's publishers changed, and the stage); None if it held no media."""
        if connection_id not in self._media_sockets:
            return None
        self._media_sockets.discard(connection_id)
        outcome = await self.run(CloseConnection(session_id, connection_id=connection_id))
        return outcome.result.stage_changed, outcome.stage

    async def send_offer(self, push: Push) -> None:
        """The host's renegotiation offer for one viewer, or a speaker's layers: to the socket,
        here or on its process."""
        node = self._remote_sockets.get(push.connection_id)
        if node is None or self._link is None or self._redis is None:
            self._deliver(push)
            return
        kind = "layers" if isinstance(push, LayersToPublisher) else "offer"
        body = {"kind": kind, "offer": dataclasses.asdict(push)}
        self._spawn(self._link.publish(NODE_CHANNEL.format(node), json.dumps(body)))

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
                    if not self.local.hosts(session_id):
                        self._hosted.discard(session_id)
                        await self._redis.eval(_RELEASE, 1, key, self.node)
                    elif not await self._redis.eval(_RENEW, 1, key, self.node, LEASE_MS):
                        self._hosted.discard(session_id)
                        log.warning("lost the lease on a stage this process hosts")
                except Exception as error:  # Redis away: try again next round
                    log.warning("could not renew stage leases: %r", error)

    # -- the relay -----------------------------------------------------------------------------

    async def _relay(self, host: str, command: Command[R]) -> Outcome[R] | None:
        """Run the command on `host`; None if `host` no longer listens (its lease is released)."""
        assert self._link is not None and self._redis is not None
        request_id = uuid.uuid4().hex
        waiting = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiting
        body = {
            "kind": "call",
            "id": request_id,
            "reply_to": self.node,
            "command": encode_command(command),
        }
        try:
            if not await self._link.publish(NODE_CHANNEL.format(host), json.dumps(body)):
                await self._redis.eval(_RELEASE, 1, HOST_KEY.format(command.session_id), host)
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
            raise decode_error(error)
        return Outcome(decode_result(reply["result"]), StageSnapshot.from_data(reply["stage"]))

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
            offer = message["offer"]
            self._deliver(OfferToViewer(**{**offer, "tracks": tuple(offer["tracks"])}))
        elif kind == "layers":
            layers = message["offer"]
            self._deliver(LayersToPublisher(**{**layers, "active": tuple(layers["active"])}))

    async def _serve(self, message: dict[str, Any]) -> None:
        """Run a command relayed from another process and send it the outcome."""
        assert self._link is not None
        reply: dict[str, Any] = {"kind": "reply", "id": message["id"]}
        try:
            # Only the port's own command types are run; anything else is refused here.
            command = decode_command(message.get("command") or {})
            outcome = await self._run(command, caller=message["reply_to"])
            reply.update(result=encode_result(outcome.result), stage=outcome.stage.to_data())
        except DomainError as error:
            reply["error"] = encode_error(error)
        except Exception:
            log.exception("a relayed stage command failed")
            reply["error"] = encode_error(MediaError(RELAY_FAILED, "the stage call failed"))
        await self._link.publish(NODE_CHANNEL.format(message["reply_to"]), json.dumps(reply))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@asynccontextmanager
async def open_stage_hosts(
    link: Link, local: LocalMediaPort, deliver: Deliver
) -> AsyncIterator[StageHosts]:
    """Stage hosting for this process on its link: local only without Redis (`memory://`),
    relayed over Redis otherwise (subscribed before it is returned); leases released on exit."""
    if link.redis is None:
        yield StageHosts(local, deliver)
        return
    hosts = StageHosts(local, deliver, link)
    await link.subscribe(NODE_CHANNEL.format(hosts.node), hosts._received)
    renewing = asyncio.create_task(hosts._renew(), name="dais-stage-leases")
    try:
        yield hosts
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        with suppress(Exception):
            await link.unsubscribe(NODE_CHANNEL.format(hosts.node))
        for session_id in hosts._hosted:
            with suppress(Exception):
                await link.redis.eval(_RELEASE, 1, HOST_KEY.format(session_id), hosts.node)
