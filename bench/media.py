"""Media benchmark: server CPU per subscriber, forwarding vs aiortc's MediaRelay, on loopback.

    .venv/bin/python bench/media.py --subscribers 100 --duration 20

Processes: one media server (its CPU is what is measured, from getrusage in that process), one
publisher (synthetic 640x480 30 fps VP8 at ~1 Mbps + Opus), and several client processes holding
the subscribers. Subscribers count RTP packets and frames (marker bit) without decoding. Signalling
between processes is JSON lines over a loopback TCP socket.

Phase 1 forwards through streaming.MediaServer to N subscribers. Phase 2, in the same run, sends
the same publisher to a naive server path: aiortc decodes it and `MediaRelay.subscribe(track)`
feeds M subscribers whose senders each encode again. Per-subscriber CPU is measured against each
phase's own zero-subscriber baseline. The last line is machine-readable; its per-core figures
are normalised to the full stream rate (forwarding: CPU per forwarded packet x the packets/s a
subscriber should receive; naive: CPU per subscriber x 30 / fps delivered), so a starved publisher,
client or naive server does not flatter either side.

With `--ice both` (the default), two more phases run between those two, each with
`--ice-subscribers` subscribers: the server's ICE as Dais runs it (lite: it answers the
subscribers' checks and sends none) and, for comparison, aioice's full ICE (it checks every
candidate a subscriber lists, then sends consent checks every ~5 s). They report, per subscriber,
the STUN requests and responses the server sent (from the subscribers connecting to the end of the
window), the timers it armed (`asyncio.sleep` calls and STUN retransmission timers a second), the
tasks it held, and its CPU. `--ice lite` or `--ice full` runs one of them.

Simulcast: `--publisher simulcast` makes the publisher send its camera as a browser sends
simulcast (one m-line with `a=rid`/`a=simulcast`, rids q, h and f: 160x120 ~150 kbit/s, 320x240
~350 kbit/s and 640x480 ~1 Mbit/s, the single stream's picture and rate, each pre-encoded and
sent on an SSRC of its own with its rid; SDP as tests/streaming/media_clients.py's
SimulcastPublisher offers it). `--compare-simulcast` keeps the single stream for phase 1 and,
after the ICE phases, runs a second forwarding phase with the same subscribers and the simulcast
publisher, then prints both per viewer (us per forwarded packet, CPU-seconds per
subscriber-second, viewers per core as measured and at the full stream rate, i.e. a top-layer
viewer's packets/s), a key=value line of them, and adds `simulcast_viewers_per_core=N
single_viewers_per_core=N simulcast_cost_ratio=N` (at the full stream rate) to the last line.
The subscribers then send a REMB once a second (`--remb`; by default `mix`: 5 Mbit/s, 700 and
300 kbit/s in turn, so a third of them each belong on the f, h and q layer; the same in both
phases), since they take RTP off the socket before aiortc's own estimator sees it. Which layer
the viewers were on comes from the server's ViewerSlots and from what each subscriber received.
A viewer below the top layer is probed (padding on its RTX stream towards the next layer): a
fixed REMB never follows a probe, so each fails after 4 s and the next waits 8 s, then 15 s...
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import fractions
import io
import json
import multiprocessing
import os
import pathlib
import pstats
import resource
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "streaming")]

SESSION = "bench"


def cpu_seconds() -> tuple[float, float]:
    """User and system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


# --- signalling over loopback TCP ------------------------------------------------------------


class SignalClient:
    """Request/response plus server pushes, one JSON object per line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._next = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port: int) -> SignalClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        return cls(reader, writer)

    async def _read(self) -> None:
        while line := await self._reader.readline():
            message = json.loads(line)
            if "push" in message:
                await self.pushes.put(message["push"])
            else:
                future = self._waiting.pop(message["id"])
                if "error" in message:
                    future.set_exception(RuntimeError(message["error"]))
                else:
                    future.set_result(message["result"])

    async def request(self, op: str, **fields: Any) -> Any:
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        self._writer.write(json.dumps({"id": self._next, "op": op, **fields}).encode() + b"\n")
        await self._writer.drain()
        return await future

    async def close(self) -> None:
        self._writer.close()
        self._task.cancel()


# --- the server process ------------------------------------------------------------------------


def instrument_fanout() -> dict[str, Any]:
    """Time the forwarder's per-packet fan-out inside the server (bench only, not in streaming/).

    `cpu` accumulates thread CPU time spent forwarding; `delays` holds, per incoming packet, the
    wall time from the packet reaching the forwarder to its copy going out to the last subscriber:
    the latency the forwarding loop adds for the worst-placed subscriber.
    """
    from streaming import forwarder

    stats: dict[str, Any] = {"cpu": 0.0, "delays": []}
    original = forwarder.PublishedTrack._on_packet

    def timed(self: Any, packet: Any) -> bool:
        cpu, wall = time.thread_time(), time.perf_counter()
        # Its answer says whether the recorder's jitter buffer takes the packet (not a lower
        # simulcast layer's): passed on, or every layer would go into that buffer.
        keep = original(self, packet)
        stats["cpu"] += time.thread_time() - cpu
        if self.slot_count:
            stats["delays"].append(time.perf_counter() - wall)
            del stats["delays"][:-5000]
        return keep

    forwarder.PublishedTrack._on_packet = timed  # type: ignore[method-assign]
    return stats


def instrument_ice() -> tuple[dict[str, Any], Any]:
    """Count what the server's ICE costs (bench only): STUN it sends, timers, and which ICE new
    peers get. Returns (counters, set_mode); `set_mode("full")` gives peers created from then on
    aioice's full ICE instead of Dais's ICE-lite, for the side-by-side comparison."""
    import aioice.stun
    from media_clients import StunSent

    from streaming import peers

    stun = StunSent(lambda connection: True)
    observing = stun.observe()
    observing.__enter__()  # for the life of the server process (kept referenced below)
    counters: dict[str, Any] = {
        "stun": stun,
        "observing": observing,
        "sleeps": 0,
        "retransmit_timers": 0,
    }
    sleep = asyncio.sleep

    async def counted_sleep(delay: float, result: Any = None) -> Any:
        if delay > 0:
            counters["sleeps"] += 1
        return await sleep(delay, result)

    asyncio.sleep = counted_sleep  # type: ignore[assignment]
    retransmit = aioice.stun.Transaction._Transaction__retry  # type: ignore[attr-defined]

    def retry(self: Any) -> None:
        # Each (re)transmission of a STUN request arms one timer for the next.
        counters["retransmit_timers"] += 1
        retransmit(self)

    aioice.stun.Transaction._Transaction__retry = retry  # type: ignore[attr-defined]
    lite = peers.serve_ice_lite

    def set_mode(mode: str) -> None:
        peers.serve_ice_lite = lite if mode == "lite" else (lambda pc: None)  # type: ignore[assignment]

    return counters, set_mode


def server_process(port_queue: Any, loop: str = "uvloop", path: str = "c") -> None:
    """The media server, on uvloop by default: what uvicorn runs the app on in production.

    `path` "python" keeps every viewer on the forwarder's Python path, as a server built without
    a C compiler runs (for a side-by-side comparison with the C fan-out).
    """
    if path == "python":
        from streaming import forwarder

        forwarder._fanout = None  # type: ignore[assignment]
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(port_queue))
    else:
        asyncio.run(_serve(port_queue))


async def _serve(port_queue: Any) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaBlackhole, MediaRelay

    from streaming import MediaServer
    from streaming.peers import PublishingPeer, ViewingPeer

    writers: dict[str, asyncio.StreamWriter] = {}
    fanout = instrument_fanout()
    ice, set_ice_mode = instrument_ice()

    async def send(connection_id: str, message: dict[str, Any]) -> None:
        writer = writers.get(connection_id)
        if writer is not None:
            writer.write(json.dumps({"push": message}).encode() + b"\n")

    recordings = pathlib.Path(tempfile.mkdtemp(prefix="dais-bench-"))
    server = MediaServer(
        ice_servers=[], recordings_dir=recordings, send=send, max_peers_per_person=4
    )
    relay = MediaRelay()
    naive_tracks: list[Any] = []
    naive_pcs: dict[str, RTCPeerConnection] = {}
    blackhole = MediaBlackhole()
    profiler: cProfile.Profile | None = None
    done = asyncio.Event()

    def forwarded_packets() -> int:
        return sum(
            slot.packets_sent
            for peer in server._peers.values()
            if isinstance(peer, ViewingPeer)
            for slot in peer.slots
        )

    def simulcast_state() -> dict[str, Any]:
        """Per layer of each simulcast track: packets received, rate, video viewers on it; which
        layer each video viewer is on (by rid), and the probes its link estimate made."""
        layers = [
            {
                "rid": layer.rid,
                "ingested": layer.packets_received,
                "bps": layer.smoothed_bps,
                "viewers": layer.slot_count,
            }
            for peer in server._peers.values()
            if isinstance(peer, PublishingPeer)
            for track in peer.tracks.values()
            if len(track.layers) > 1
            for layer in track.layers
        ]
        on: dict[str, int] = {}
        probes = [0, 0, 0]
        for peer in server._peers.values():
            if not isinstance(peer, ViewingPeer):
                continue
            for slot in peer.slots:
                if slot.kind != "video" or slot.source is None:
                    continue
                rid = slot.source.rid or "single"
                on[rid] = on.get(rid, 0) + 1
                counts = slot.link.counts
                probes[0] += counts.started
                probes[1] += counts.succeeded
                probes[2] += counts.failed
        return {"layers": layers, "viewer_layers": on, "probes": probes}

    async def handle(op: str, connection_id: str, request: dict[str, Any]) -> Any:
        nonlocal profiler
        if op == "publish":
            return await server.publish(
                session_id=SESSION,
                person_id="speaker",
                connection_id=connection_id,
                may_publish=True,
                sdp=request["sdp"],
            )
        if op == "set_live":
            await server.set_live(session_id=SESSION, person_id="speaker", live=True)
            return None
        if op == "watch":
            return await server.watch(
                session_id=SESSION,
                person_id=request["person"],
                connection_id=connection_id,
                sees_green_room=False,
            )
        if op == "answer":
            if request["peer_id"] in naive_pcs:
                await naive_pcs[request["peer_id"]].setRemoteDescription(
                    RTCSessionDescription(sdp=request["sdp"], type="answer")
                )
            else:
                await server.answer(
                    connection_id=connection_id, peer_id=request["peer_id"], sdp=request["sdp"]
                )
            return None
        if op == "naive_publish":
            pc = RTCPeerConnection()

            @pc.on("track")
            def on_track(track: Any) -> None:
                naive_tracks.append(track)
                blackhole.addTrack(relay.subscribe(track))  # keep the decoded queue drained

            await pc.setRemoteDescription(RTCSessionDescription(sdp=request["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await blackhole.start()
            naive_pcs["publisher"] = pc
            return {"sdp": pc.localDescription.sdp}
        if op == "naive_watch":
            pc = RTCPeerConnection()
            for track in naive_tracks:
                pc.addTransceiver(relay.subscribe(track), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            peer_id = f"naive-{len(naive_pcs)}"
            naive_pcs[peer_id] = pc
            return {"peer_id": peer_id, "sdp": pc.localDescription.sdp}
        if op == "close_connection":
            await server.close_connection(request["connection"])
            return None
        if op == "ice":
            set_ice_mode(request["mode"])
            return None
        if op == "cpu":
            user, system = cpu_seconds()
            return {
                "cpu": user + system,
                "user": user,
                "time": time.monotonic(),
                "forwarded": forwarded_packets(),
                "ingested": sum(
                    track.packets_received
                    for peer in server._peers.values()
                    if isinstance(peer, PublishingPeer)
                    for track in peer.tracks.values()
                ),
                "native_slots": sum(
                    layer.native_slot_count
                    for peer in server._peers.values()
                    if isinstance(peer, PublishingPeer)
                    for track in peer.tracks.values()
                    for layer in track.layers
                ),
                **simulcast_state(),
                "fanout_cpu": fanout["cpu"],
                "fanout_delays": fanout["delays"][-2000:],
                "stun_requests": len(ice["stun"].requests),
                "stun_responses": ice["stun"].responses,
                "sleeps": ice["sleeps"],
                "retransmit_timers": ice["retransmit_timers"],
                "tasks": len(asyncio.all_tasks()),
            }
        if op == "profile_start":
            profiler = cProfile.Profile()
            profiler.enable()
            return None
        if op == "profile_stop":
            assert profiler is not None
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
            return text.getvalue()
        if op == "quit":
            done.set()
            return None
        raise ValueError(f"unknown op {op}")

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection_id = f"tcp-{id(writer)}"
        writers[connection_id] = writer
        try:
            while line := await reader.readline():
                request = json.loads(line)
                try:
                    result = await handle(request["op"], connection_id, request)
                    reply = {"id": request["id"], "result": result}
                except Exception as exc:  # reported to the client, the bench aborts there
                    reply = {"id": request["id"], "error": repr(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writers.pop(connection_id, None)
            # As the gateway does when a socket closes: its peers close with it (a subscriber
            # process that finished must not leave peers behind for the next phase).
            if not done.is_set():
                await server.close_connection(connection_id)

    listener = await asyncio.start_server(client, "127.0.0.1", 0, limit=1 << 22)
    print(f"server process pid {os.getpid()}", flush=True)
    port_queue.put(listener.sockets[0].getsockname()[1])
    await done.wait()
    await server.close()
    for pc in naive_pcs.values():
        await pc.close()
    await blackhole.stop()
    listener.close()


# --- the publisher process ---------------------------------------------------------------------


def pre_encode(camera: Any, seconds: float = 4.0, bitrate: int = 1_000_000) -> list[bytes]:
    """Encode a loop of the synthetic camera once (VP8, CBR, a keyframe every second).

    Sending pre-encoded packets keeps the publisher process cheap, so on a small shared machine
    the publisher is not what limits the frame rate subscribers see.
    """
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = camera.width, camera.height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, camera.rate)
    codec.gop_size = camera.rate
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
        "lag-in-frames": "0",
        "noise-sensitivity": "0",
    }
    encoded: list[bytes] = []
    noise = os.urandom(camera.width * camera.height).translate(bytes(b & 0x07 for b in range(256)))
    camera._start = -1e9  # no real-time pacing while pre-encoding
    for index in range(int(seconds * camera.rate)):
        frame = asyncio.run(camera.recv())
        # Grain that moves every frame, so the encoder has ~1 Mbps worth of detail to spend.
        offset = (index * 7919) % len(noise)
        luma = bytes(frame.planes[0])
        grain = noise[offset:] + noise[:offset]
        mixed = int.from_bytes(luma, "big") ^ int.from_bytes(grain[: len(luma)], "big")
        frame.planes[0].update(mixed.to_bytes(len(luma), "big"))
        frame.pts = index
        frame.time_base = codec.time_base
        encoded += [bytes(packet) for packet in codec.encode(frame)]
    encoded += [bytes(packet) for packet in codec.encode(None)]
    return encoded


def _pre_encoded_camera_class() -> Any:
    from aiortc.mediastreams import MediaStreamTrack

    class PreEncodedCamera(MediaStreamTrack):
        """Replays pre-encoded VP8 frames at 30 fps: aiortc's sender only packetizes them."""

        kind = "video"

        def __init__(self, frames: list[bytes], rate: int = 30) -> None:
            super().__init__()
            self.frames, self.rate = frames, rate
            self.count = 0
            self.start: float | None = None

        async def recv(self) -> Any:
            import av

            if self.start is None:
                self.start = time.monotonic()
            delay = self.start + self.count / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            packet = av.Packet(self.frames[self.count % len(self.frames)])
            packet.pts = self.count
            packet.time_base = fractions.Fraction(1, self.rate)
            self.count += 1
            return packet

    return PreEncodedCamera


# Simulcast layers as a browser sends a 640x480 camera: rids lowest first, (width, height, bps).
# The top layer is the single stream's picture and rate, so the comparison is like for like.
# What bench subscribers say their link carries (REMB), in turn: none, all on the top layer, or
# a third of them each on the top, half and quarter layer.
REMB_PLANS: dict[str, list[int]] = {
    "none": [],
    "top": [5_000_000],
    "mix": [5_000_000, 700_000, 300_000],
}
SIMULCAST_LAYERS = (("q", 160, 120, 150_000), ("h", 320, 240, 350_000), ("f", 640, 480, 1_000_000))


def pre_encode_layers() -> list[list[bytes]]:
    """A pre-encoded loop of the synthetic camera per simulcast layer (lowest first)."""
    from media_clients import SyntheticCamera

    return [
        pre_encode(SyntheticCamera(width, height), bitrate=bps)
        for _, width, height, bps in SIMULCAST_LAYERS
    ]


async def send_layers(pc: Any, layers: list[list[bytes]], rate: int = 30) -> None:
    """Send the pre-encoded layers as a browser sends simulcast: each on an SSRC of its own, with
    the MID, its rid and abs-send-time in header extensions (as tests/streaming/media_clients.py's
    SimulcastPublisher, but from pre-encoded frames at 30 fps, so the publisher stays cheap).
    Keyframes come every second from the loop; PLIs are not answered (nor are they for the single
    stream's pre-encoded camera)."""
    import av
    from aiortc.codecs.vpx import Vp8Encoder
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket
    from media_clients import wait_connected

    from streaming.header_layout import ABS_SEND_TIME_URI, MID_URI
    from streaming.simulcast import RID_URI

    await wait_connected(pc, 20.0)
    (video,) = [t for t in pc.getTransceivers() if t.kind == "video"]
    vp8 = next(c for c in video._codecs if c.mimeType.lower() == "video/vp8")
    ids = {e.uri: e.id for e in video._headerExtensions}
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=ids[MID_URI], uri=MID_URI),
                RTCRtpHeaderExtensionParameters(id=ids[ABS_SEND_TIME_URI], uri=ABS_SEND_TIME_URI),
                RTCRtpHeaderExtensionParameters(id=10, uri=RID_URI),  # as SimulcastPublisher
            ]
        )
    )
    dtls = video.sender.transport
    packers = [Vp8Encoder() for _ in layers]  # each layer's own picture ids
    ssrcs = [0x1000 + index for index in range(len(layers))]
    sequence = [0] * len(layers)
    start, count = time.monotonic(), 0
    try:
        while True:
            delay = start + count / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for index, frames in enumerate(layers):
                frame = av.Packet(frames[count % len(frames)])
                frame.pts, frame.time_base = count, fractions.Fraction(1, rate)
                payloads, timestamp = packers[index].pack(frame)
                for n, payload in enumerate(payloads):
                    packet = RtpPacket(
                        payload_type=vp8.payloadType,
                        marker=int(n == len(payloads) - 1),
                        sequence_number=sequence[index],
                        timestamp=timestamp,
                        ssrc=ssrcs[index],
                        payload=payload,
                    )
                    packet.extensions.mid = video.mid
                    packet.extensions.rtp_stream_id = SIMULCAST_LAYERS[index][0]
                    packet.extensions.abs_send_time = (
                        int((time.time() + 2208988800) * (1 << 18)) & 0xFFFFFF
                    )
                    sequence[index] = (sequence[index] + 1) & 0xFFFF
                    await dtls._send_rtp(packet.serialize(extensions))
            count += 1
    except (asyncio.CancelledError, ConnectionError):
        return


def publisher_process(port: int, ready: Any, commands: Any, mode: str = "single") -> None:
    asyncio.run(_publish(port, ready, commands, mode))


async def _publish(port: int, ready: Any, commands: Any, mode: str) -> None:
    """Publishes to the forwarder, one stream (`mode` "single") or three simulcast layers
    ("simulcast"); on "single" or "simulcast", publishes again that way; on "naive", moves over
    to the naive path (one stream); on "stop", ends."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from media_clients import SimulcastPublisher, SyntheticCamera, Tone, wait_connected

    PreEncodedCamera = _pre_encoded_camera_class()
    loop = asyncio.get_running_loop()
    loop_of_packets = await loop.run_in_executor(None, pre_encode, SyntheticCamera())
    layers: list[list[bytes]] = []
    signal = await SignalClient.connect(port)
    sending: asyncio.Task[None] | None = None

    async def connect(op: str, simulcast: bool = False) -> Any:
        nonlocal sending, layers
        pc = RTCPeerConnection()
        if simulcast:
            if not layers:
                layers = await loop.run_in_executor(None, pre_encode_layers)
            pc.addTransceiver("video", direction="sendonly")
        else:
            pc.addTransceiver(PreEncodedCamera(loop_of_packets), direction="sendonly")
        pc.addTransceiver(Tone(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        if simulcast:
            # a=rid/a=simulcast for q, h and f, no a=ssrc on the video m-line, as a browser offers
            sdp = SimulcastPublisher._with_layers(sdp)
        reply = await signal.request(op, sdp=sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        if simulcast:
            sending = asyncio.ensure_future(send_layers(pc, layers))
            await wait_connected(pc, 20.0)
        return pc

    pc = await connect("publish", simulcast=mode == "simulcast")
    ready.set()
    while True:
        while not commands.poll(0):
            await asyncio.sleep(0.1)
        command = commands.recv()
        if sending is not None:
            sending.cancel()
            sending = None
        await pc.close()
        if command not in ("naive", "single", "simulcast"):
            break
        if command == "naive":
            pc = await connect("naive_publish")
        else:
            pc = await connect("publish", simulcast=command == "simulcast")
        ready.set()
    await signal.close()


# --- subscriber processes ----------------------------------------------------------------------


def subscriber_process(
    port: int,
    count: int,
    naive: bool,
    index: int,
    go: Any,
    results: Any,
    window: Any,
    rembs: list[int] | None = None,
) -> None:
    asyncio.run(_subscribe(port, count, naive, index, go, results, window, rembs or []))


class RawCounter:
    """Frames (marker bit) and packets of one kind, read from the RTP header alone."""

    def __init__(self) -> None:
        self.packets = 0
        self.frame_times: list[float] = []
        self.latencies: list[float] = []
        self.octets = 0  # of the frame under way
        self.frame_octets: list[int] = []  # per frame, beside frame_times

    def rate(self, since: float, until: float) -> float:
        return sum(1 for t in self.frame_times if since <= t < until) / (until - since)

    def bps(self, since: float, until: float) -> float:
        """Bits a second of the frames that ended in the window (RTP packets, headers too)."""
        octets = sum(
            size
            for t, size in zip(self.frame_times, self.frame_octets, strict=True)
            if since <= t < until
        )
        return octets * 8 / (until - since)


def count_packets(pc: Any, kinds: dict[int, str], counters: dict[str, RawCounter]) -> None:
    """Count a client's incoming RTP at its socket, reading only the (unencrypted) RTP header.

    100 full aiortc receive stacks (ICE queue, task switch, SRTP, parse, route per packet) do not
    fit on a 2-core machine next to the server; so the bench client looks at each datagram as it
    arrives and passes on only what is not RTP (STUN, DTLS, RTCP) to aiortc. No jitter buffer,
    no decoder; the SRTP auth tag is not checked (the test suite proves the stream decodes).
    Latency comes from the publisher's abs-send-time extension (id 3), which the forwarder passes
    through untouched.
    """

    def count(data: bytes) -> None:
        kind = kinds.get(data[1] & 0x7F)
        if kind is None:
            return
        counter = counters[kind]
        counter.packets += 1
        counter.octets += len(data)
        if not data[1] & 0x80 and kind != "rtx":  # RTX (probe padding): each packet counts
            return
        counter.frame_times.append(time.monotonic())
        counter.frame_octets.append(counter.octets)
        counter.octets = 0
        if kind == "video" and data[0] & 0x10 and len(counter.frame_times) % 10 == 0:
            index, end = 16, 16 + 4 * int.from_bytes(data[14:16], "big")
            while index < end:
                element_id, size = data[index] >> 4, (data[index] & 0x0F) + 1
                if element_id == 3 and size == 3:
                    sent = int.from_bytes(data[index + 1 : index + 4], "big")
                    ntp = int((time.time() + 2208988800) * (1 << 18)) & 0xFFFFFF
                    counter.latencies.append(((ntp - sent) & 0xFFFFFF) / (1 << 18))
                    break
                index += 1 + size if element_id else 1

    connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    for protocol in connection._protocols:
        original = protocol.datagram_received

        def datagram_received(data: bytes, addr: Any, original: Any = original) -> None:
            # RTP (not RTCP: payload types 200-207 sit where RTP's marker + PT are).
            if 127 < data[0] < 192 and not 199 < data[1] < 208:
                count(data)
            else:
                original(data, addr)

        protocol.datagram_received = datagram_received


def video_ssrc(sdp: str) -> int | None:
    """The SSRC the server sends the viewer's (first) video on, from its offer."""
    in_video = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        elif in_video and line.startswith("a=ssrc:"):
            return int(line[7:].split()[0])
    return None


async def send_remb(pc: Any, ssrc: int, bitrate: int) -> None:
    """Say the viewer's link carries `bitrate`, once a second, as a browser's REMB does (the
    bench's clients take RTP off the socket before aiortc, whose estimator never sees any)."""
    from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

    (receiver, *_) = [t.receiver for t in pc.getTransceivers() if t.kind == "video"]
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP,
        ssrc=receiver._RTCRtpReceiver__rtcp_ssrc,
        media_ssrc=0,
        fci=pack_remb_fci(bitrate, [ssrc]),
    )
    while True:
        if receiver.transport.state == "connected":
            try:
                await receiver._send_rtcp(packet)
            except ConnectionError:
                return
        await asyncio.sleep(1.0)


async def _subscribe(
    port: int,
    count: int,
    naive: bool,
    index: int,
    go: Any,
    results: Any,
    window: Any,
    rembs: list[int],
) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    os.nice(5)  # our own clients yield to the server and the publisher on a small machine
    subscribers = []
    senders: list[asyncio.Task[None]] = []
    for i in range(count):
        signal = await SignalClient.connect(port)
        pc = RTCPeerConnection()
        counters = {"video": RawCounter(), "audio": RawCounter(), "rtx": RawCounter()}
        offer = await signal.request(
            "naive_watch" if naive else "watch", person=f"viewer-{index}-{i}"
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        kinds: dict[int, str] = {
            # RTX apart: a probe's padding comes on it (streaming/link_estimate.py)
            codec.payloadType: "rtx"
            if codec.mimeType.lower().endswith("/rtx")
            else transceiver.kind
            for transceiver in pc.getTransceivers()
            for codec in transceiver._codecs
            if codec.payloadType is not None
        }
        count_packets(pc, kinds, counters)
        await signal.request("answer", peer_id=offer["peer_id"], sdp=pc.localDescription.sdp)
        subscribers.append((signal, pc, counters))
        ssrc = video_ssrc(offer["sdp"])
        if rembs and ssrc is not None:
            senders.append(asyncio.ensure_future(send_remb(pc, ssrc, rembs[i % len(rembs)])))
    while not go.is_set():  # the main process measures, then tells us the window to report on
        await asyncio.sleep(0.05)
    while not window.poll(0.05):
        await asyncio.sleep(0.05)
    since, until = window.recv()
    report = []
    for _, _, counters in subscribers:
        video, audio = counters["video"], counters["audio"]
        report.append(
            {
                "fps": video.rate(since, until),
                "audio_pps": audio.rate(since, until),
                "video_bps": video.bps(since, until),
                "rtx_bps": counters["rtx"].bps(since, until),
                "video_packets": video.packets,
                "latencies": video.latencies[-200:],
            }
        )
    results.put(report)
    for task in senders:
        task.cancel()
    for signal, pc, _ in subscribers:
        await pc.close()
        await signal.close()


# --- orchestration -----------------------------------------------------------------------------


async def measure(control: SignalClient, seconds: float) -> dict[str, Any]:
    first = await control.request("cpu")
    await asyncio.sleep(seconds)
    last = await control.request("cpu")
    elapsed = last["time"] - first["time"]
    return {
        "first": first,
        "last": last,
        "sleeps_per_s": (last["sleeps"] - first["sleeps"]) / elapsed,
        "stun_timers_per_s": (last["retransmit_timers"] - first["retransmit_timers"]) / elapsed,
        "stun_requests_per_s": (last["stun_requests"] - first["stun_requests"]) / elapsed,
        "cores": (last["cpu"] - first["cpu"]) / elapsed,
        "user_cores": (last["user"] - first["user"]) / elapsed,
        "packets_per_s": (last["forwarded"] - first["forwarded"]) / elapsed,
        "ingest_per_s": (last["ingested"] - first["ingested"]) / elapsed,
        "fanout_cores": (last["fanout_cpu"] - first["fanout_cpu"]) / elapsed,
        "native_slots": last["native_slots"],
        "fanout_delays": last["fanout_delays"],
        "elapsed": elapsed,
        "since": time.monotonic() - seconds,
        "until": time.monotonic(),
    }


def start_subscribers(
    port: int, total: int, processes: int, naive: bool, ctx: Any, rembs: list[int] | None = None
) -> tuple[list[Any], Any, Any, list[Any]]:
    go = ctx.Event()
    results = ctx.Queue()
    pipes = []
    workers = []
    per = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    first = 0  # the worker's first subscriber: the REMB plan goes round all of them in turn
    for index, count in enumerate(c for c in per if c):
        receive, send = ctx.Pipe(duplex=False)
        pipes.append(send)
        turn = rembs[first % len(rembs) :] + rembs[: first % len(rembs)] if rembs else None
        first += count
        worker = ctx.Process(
            target=subscriber_process,
            args=(port, count, naive, index, go, results, receive, turn),
            daemon=True,
        )
        worker.start()
        workers.append(worker)
    return workers, go, results, pipes


async def run_phase(
    control: SignalClient,
    port: int,
    ctx: Any,
    *,
    subscribers: int,
    processes: int,
    naive: bool,
    seconds: float,
    warmup: float,
    profile: float,
    rembs: list[int] | None = None,
) -> dict[str, Any]:
    baseline = await measure(control, 3.0)
    workers, go, results, pipes = start_subscribers(port, subscribers, processes, naive, ctx, rembs)
    await asyncio.sleep(warmup)
    go.set()
    loaded = await measure(control, seconds)
    profile_text = ""
    if profile:
        await control.request("profile_start")
        await asyncio.sleep(profile)
        profile_text = await control.request("profile_stop")
    for pipe in pipes:
        pipe.send((loaded["since"], loaded["until"]))
    reports: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    for _ in workers:
        reports += await loop.run_in_executor(None, results.get, True, 120)
    for worker in workers:
        await loop.run_in_executor(None, worker.join, 30)
        if worker.is_alive():
            worker.terminate()
    fps = sorted(r["fps"] for r in reports)
    latencies = sorted(x for r in reports for x in r["latencies"])
    added = loaded["cores"] - baseline["cores"]
    per_subscriber = max(added, 1e-9) / subscribers
    fps_median = statistics.median(fps) if fps else 0.0
    # Normalised to the full stream, so a starved publisher or client does not flatter the figure:
    # forwarding by CPU per forwarded packet x the packets/s one subscriber should get (what the
    # server ingests with nobody watching); the naive path by the frame rate it delivered.
    if not naive and loaded["packets_per_s"] > 0 and baseline["ingest_per_s"] > 0:
        full_rate = max(added, 1e-9) / loaded["packets_per_s"] * baseline["ingest_per_s"]
    elif naive and 0 < fps_median < 29:
        full_rate = per_subscriber * 30 / fps_median
    else:
        full_rate = per_subscriber
    return {
        "nominal_pps": baseline["ingest_per_s"],
        "full_rate_per_subscriber": full_rate,
        "full_rate_per_core": 1.0 / full_rate,
        "subscribers": subscribers,
        "baseline_cores": baseline["cores"],
        "loaded_cores": loaded["cores"],
        "loaded_user_cores": loaded["user_cores"],
        "baseline_user_cores": baseline["user_cores"],
        "per_subscriber": per_subscriber,
        "per_core": 1.0 / per_subscriber,
        "fps_median": fps_median,
        "fps_min": fps[0] if fps else 0.0,
        "audio_pps_median": statistics.median(r["audio_pps"] for r in reports) if reports else 0,
        "packets_per_s": loaded["packets_per_s"],
        "fanout_cores": loaded["fanout_cores"],
        "native_slots": loaded["native_slots"],
        "fanout_delays": sorted(loaded["fanout_delays"]),
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "latency_p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else None,
        "profile": profile_text,
        "received": len(reports),
        "video_bps": sorted(r["video_bps"] for r in reports),
        "rtx_bps": sorted(r["rtx_bps"] for r in reports),
        # Simulcast: each layer's rate and packets/s as received with nobody watching, which
        # layer the video viewers were on at the window's start and end, and the probes made.
        "layers": [
            {
                "rid": layer["rid"],
                "bps": layer["bps"],
                "pps": (layer["ingested"] - first["ingested"]) / baseline["elapsed"],
            }
            for layer, first in zip(
                baseline["last"]["layers"], baseline["first"]["layers"], strict=False
            )
        ],
        "viewer_layers_start": loaded["first"]["viewer_layers"],
        "viewer_layers_end": loaded["last"]["viewer_layers"],
        "probes": [
            b - a for a, b in zip(baseline["last"]["probes"], loaded["last"]["probes"], strict=True)
        ],
        # ICE: from just before the subscribers connect to the end of the window, per subscriber.
        "stun_requests": (loaded["last"]["stun_requests"] - baseline["last"]["stun_requests"])
        / subscribers,
        "stun_responses": (loaded["last"]["stun_responses"] - baseline["last"]["stun_responses"])
        / subscribers,
        "stun_requests_per_s": (loaded["stun_requests_per_s"] - baseline["stun_requests_per_s"])
        / subscribers,
        "sleeps_per_s": (loaded["sleeps_per_s"] - baseline["sleeps_per_s"]) / subscribers,
        "stun_timers_per_s": (loaded["stun_timers_per_s"] - baseline["stun_timers_per_s"])
        / subscribers,
        "tasks": (loaded["last"]["tasks"] - baseline["last"]["tasks"]) / subscribers,
        "window": loaded["until"] - loaded["since"],
    }


async def orchestrate(args: argparse.Namespace) -> int:
    ctx = multiprocessing.get_context("spawn")
    port_queue = ctx.Queue()
    server = ctx.Process(
        target=server_process, args=(port_queue, args.loop, args.path), daemon=True
    )
    server.start()
    port = port_queue.get(timeout=30)
    control = await SignalClient.connect(port)
    ready = ctx.Event()
    commands, publisher_commands = ctx.Pipe(duplex=False)
    publisher = ctx.Process(
        target=publisher_process, args=(port, ready, commands, args.publisher), daemon=True
    )
    publisher.start()
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, ready.wait, 60):
        raise RuntimeError("publisher did not connect")
    await control.request("set_live")
    await asyncio.sleep(3.0 if args.publisher == "simulcast" else 2.0)
    simulcast_runs = args.compare_simulcast or args.publisher == "simulcast"
    remb = args.remb or ("mix" if simulcast_runs else "none")
    rembs = REMB_PLANS[remb]

    print(f"server event loop: {args.loop}; fan-out: {args.path}", flush=True)
    print(
        f"forwarding ({args.publisher} publisher): {args.subscribers} subscribers in "
        f"{args.processes} processes, {args.duration:.0f} s",
        flush=True,
    )
    if rembs:
        print(f"subscribers send REMB ({remb}): {', '.join(map(str, rembs))} bit/s", flush=True)

    async def forwarding() -> dict[str, Any]:
        """One forwarding phase: the same subscribers, REMBs and window, whatever publishes."""
        return await run_phase(
            control,
            port,
            ctx,
            subscribers=args.subscribers,
            processes=args.processes,
            naive=False,
            seconds=args.duration,
            warmup=args.warmup,
            profile=args.profile,
            rembs=rembs,
        )

    forward = await forwarding()
    ice_phases: dict[str, dict[str, Any]] = {}
    for mode in ("lite", "full") if args.ice == "both" else (args.ice,):
        print(
            f"ICE {mode}: {args.ice_subscribers} subscribers, {args.ice_duration:.0f} s",
            flush=True,
        )
        await control.request("ice", mode=mode)
        ice_phases[mode] = await run_phase(
            control,
            port,
            ctx,
            subscribers=args.ice_subscribers,
            processes=min(args.processes, args.ice_subscribers),
            naive=False,
            seconds=args.ice_duration,
            warmup=args.warmup,
            profile=0,
        )
        await asyncio.sleep(1.0)  # the phase's peers close with their sockets
    await control.request("ice", mode="lite")
    simulcast: dict[str, Any] | None = None
    if args.compare_simulcast:
        ready.clear()
        publisher_commands.send("simulcast")
        if not await loop.run_in_executor(None, ready.wait, 60):
            raise RuntimeError("publisher did not publish simulcast")
        await control.request("set_live")
        await asyncio.sleep(3.0)  # each layer's rate is known after a window or two
        print(
            f"forwarding (simulcast publisher): {args.subscribers} subscribers in "
            f"{args.processes} processes, {args.duration:.0f} s",
            flush=True,
        )
        simulcast = await forwarding()
    print(f"naive MediaRelay: {args.naive} subscribers, {args.naive_duration:.0f} s", flush=True)
    ready.clear()
    publisher_commands.send("naive")
    if not await loop.run_in_executor(None, ready.wait, 30):
        raise RuntimeError("publisher did not reach the naive path")
    await asyncio.sleep(2.0)
    naive = await run_phase(
        control,
        port,
        ctx,
        subscribers=args.naive,
        processes=min(args.processes, args.naive),
        naive=True,
        seconds=args.naive_duration,
        warmup=args.warmup,
        profile=0,
    )

    await control.request("quit")
    publisher_commands.send("stop")
    for process in (publisher, server):
        await loop.run_in_executor(None, process.join, 20)
        if process.is_alive():
            process.terminate()

    phases = [("forward", forward), ("naive", naive)]
    if simulcast is not None:
        phases.insert(1, ("simulcast", simulcast))
    for name, phase in phases:
        print(f"\n[{name}] subscribers={phase['subscribers']} (reports {phase['received']})")
        print(
            f"  server CPU: baseline {phase['baseline_cores']:.3f} cores, loaded "
            f"{phase['loaded_cores']:.3f} cores (user {phase['baseline_user_cores']:.3f} -> "
            f"{phase['loaded_user_cores']:.3f}; the rest is kernel time, loopback sends included)"
        )
        print(
            f"  server CPU per subscriber: {phase['per_subscriber'] * 1000:.2f} millicores as "
            f"measured, {phase['full_rate_per_subscriber'] * 1000:.2f} at the full stream rate"
            f" -> {phase['full_rate_per_core']:.1f} subscribers per server core (measured:"
            f" {phase['per_core']:.0f})"
        )
        print(
            f"  video fps received: median {phase['fps_median']:.1f}, worst "
            f"{phase['fps_min']:.1f}; audio packets/s median {phase['audio_pps_median']:.1f}"
        )
        if name != "naive":
            pps = phase["packets_per_s"]
            print(
                f"  full stream: {phase['nominal_pps']:.0f} packets/s per subscriber "
                "(what the server ingests with nobody watching"
                + (", top layer and audio)" if phase["layers"] else ")")
            )
            if phase["layers"]:
                print_layers(phase)
            print(
                f"  packets forwarded: {pps:.0f}/s -> "
                f"{(phase['loaded_cores'] - phase['baseline_cores']) / max(pps, 1) * 1e6:.1f}"
                " us of server CPU per forwarded packet"
            )
            print(
                f"  viewer slots on the C fan-out: {phase['native_slots']} "
                f"(of {2 * phase['subscribers']}: video and audio per subscriber)"
            )
            delays = phase["fanout_delays"]
            print(
                f"  of which the forwarding loop itself: {phase['fanout_cores']:.3f} cores = "
                f"{phase['fanout_cores'] / max(pps, 1) * 1e6:.1f} us per forwarded packet"
            )
            if delays:
                print(
                    "  latency added by the server's fan-out (packet in -> last copy out): "
                    f"p50 {delays[len(delays) // 2] * 1000:.2f} ms, "
                    f"p95 {delays[int(len(delays) * 0.95)] * 1000:.2f} ms, "
                    f"max {delays[-1] * 1000:.2f} ms"
                )
            if phase["latency_p50_ms"] is not None:
                print(
                    f"  publisher-send -> subscriber-receive latency (abs-send-time): "
                    f"p50 {phase['latency_p50_ms']:.1f} ms, p95 {phase['latency_p95_ms']:.1f} ms"
                )
            print("  profile of the server process (top by own time):")
            lines = phase["profile"].splitlines()
            start = next((i for i, x in enumerate(lines) if "ncalls" in x), 0)
            for line in lines[max(0, start - 6) : start + 15]:
                if line.strip():
                    print("    " + line.strip()[:150])
    if ice_phases:
        print_ice(ice_phases, args.warmup)
    micro = micro_forwarding()
    print(
        f"\n[fan-out alone, this process, 100 slots, Python path] {micro['full']:.1f} us CPU per "
        f"forwarded packet = {micro['python_only']:.1f} Python (header rewrite, checks, copies "
        f"in and out of SRTP's buffer) + {micro['without_send'] - micro['python_only']:.1f} SRTP "
        "(libsrtp) + "
        f"{micro['full'] - micro['without_send']:.1f} sendto and draining on loopback "
        f"-> {1e6 / (micro['full'] * 168):.0f} subscribers per core at 168 packets/s each"
    )
    if "native" in micro:
        print(
            f"[fan-out alone, same slots on the C fan-out] {micro['native']:.1f} us CPU per "
            f"forwarded packet ({micro['full'] / micro['native']:.1f}x less than the Python path)"
            f" -> {1e6 / (micro['native'] * 168):.0f} subscribers per core at 168 packets/s each"
        )
    else:
        print("[fan-out alone, C fan-out] not built: the server ran the Python path")
    forward_per_core = forward["full_rate_per_core"]
    naive_per_core = naive["full_rate_per_core"]
    last = (
        f"subscribers={args.subscribers} fps_min={forward['fps_min']:.0f} "
        f"forward_per_core={forward_per_core:.0f} naive_per_core={naive_per_core:.1f} "
        f"ratio={forward_per_core / naive_per_core:.0f}"
    )
    if simulcast is not None:
        print_simulcast_comparison(forward, simulcast)
        last += (
            f" simulcast_viewers_per_core={simulcast['full_rate_per_core']:.0f}"
            f" single_viewers_per_core={forward_per_core:.0f}"
            f" simulcast_cost_ratio="
            f"{simulcast['full_rate_per_subscriber'] / forward['full_rate_per_subscriber']:.2f}"
        )
    elif args.publisher == "simulcast":
        print(f"simulcast {phase_figures(forward, 'simulcast')}")
        last += f" simulcast_viewers_per_core={forward_per_core:.0f}"
    print(last)
    return 0


def phase_figures(phase: dict[str, Any], name: str) -> str:
    """A forwarding phase's cost per viewer, key=value."""
    added = phase["loaded_cores"] - phase["baseline_cores"]
    on = phase["viewer_layers_end"]
    layers = ",".join(f"{rid}:{on[rid]}" for rid in sorted(on, key=layer_rank))
    return (
        f"{name}_us_per_packet={added / max(phase['packets_per_s'], 1) * 1e6:.1f} "
        f"{name}_cpu_s_per_viewer_s={phase['per_subscriber']:.6f} "
        f"{name}_measured_per_core={phase['per_core']:.0f} "
        f"{name}_viewers_per_core={phase['full_rate_per_core']:.0f} "
        f"{name}_pps={phase['packets_per_s']:.0f} "
        f"{name}_baseline_cores={phase['baseline_cores']:.3f} "
        f"{name}_fps_median={phase['fps_median']:.1f} "
        f"{name}_layers={layers or '-'}"
    )


def layer_rank(rid: str) -> int:
    rids = [rid for rid, *_ in SIMULCAST_LAYERS]
    return rids.index(rid) if rid in rids else len(rids)


def print_layers(phase: dict[str, Any]) -> None:
    """A simulcast phase's layers, and which of them its viewers were on."""
    layers = phase["layers"]
    print(
        "  layers received with nobody watching: "
        + ", ".join(
            f"{layer['rid']} {layer['bps'] / 1000:.0f} kbit/s {layer['pps']:.0f} packets/s"
            for layer in layers
        )
    )
    for when in ("start", "end"):
        on = phase[f"viewer_layers_{when}"]
        print(
            f"  video viewers by layer at the window's {when} (server's ViewerSlots): "
            + ", ".join(f"{rid} {on[rid]}" for rid in sorted(on, key=layer_rank))
        )
    # What each subscriber received, put with the layer whose rate is nearest.
    near: dict[str, int] = {}
    for bps in phase["video_bps"]:
        nearest = min(layers, key=lambda layer: abs(layer["bps"] - bps))["rid"]
        near[nearest] = near.get(nearest, 0) + 1
    received = phase["video_bps"]
    if received:
        print(
            f"  video received per subscriber: min {received[0] / 1000:.0f}, median "
            f"{statistics.median(received) / 1000:.0f}, max {received[-1] / 1000:.0f} kbit/s;"
            " nearest layer: "
            + ", ".join(f"{rid} {near[rid]}" for rid in sorted(near, key=layer_rank))
        )
    rtx = phase["rtx_bps"]
    if rtx and rtx[-1] > 0:
        print(
            f"  probe padding received (RTX) per subscriber: median "
            f"{statistics.median(rtx) / 1000:.0f}, max {rtx[-1] / 1000:.0f} kbit/s; "
            f"{sum(1 for x in rtx if x > 0)} subscribers got some in the window"
        )
    started, succeeded, failed = phase["probes"]
    print(
        f"  probes (padding towards the next layer): {started} started, {succeeded} "
        f"succeeded, {failed} failed, from the subscribers connecting to the window's end"
    )


def print_simulcast_comparison(single: dict[str, Any], simulcast: dict[str, Any]) -> None:
    """Single stream against simulcast, per viewer, from the same run."""
    print("\n[simulcast vs single stream] per viewer, same subscribers, same run")
    for name, phase in (("single", single), ("simulcast", simulcast)):
        added = phase["loaded_cores"] - phase["baseline_cores"]
        print(
            f"  {name}: {added / max(phase['packets_per_s'], 1) * 1e6:.1f} us per forwarded "
            f"packet, {phase['per_subscriber'] * 1e3:.3f} CPU-ms per subscriber-second "
            f"(measured: {phase['per_core']:.0f} viewers per core; at the full stream rate: "
            f"{phase['full_rate_per_core']:.0f}); ingest with nobody watching "
            f"{phase['baseline_cores']:.3f} cores"
        )
    ratio = simulcast["full_rate_per_subscriber"] / single["full_rate_per_subscriber"]
    measured = simulcast["per_subscriber"] / single["per_subscriber"]
    print(
        f"  simulcast / single cost per viewer: {ratio:.2f} at the full stream rate, "
        f"{measured:.2f} as measured (simulcast viewers on lower layers get fewer packets)"
    )
    print(f"{phase_figures(single, 'single')} {phase_figures(simulcast, 'simulcast')}")


def print_ice(phases: dict[str, dict[str, Any]], warmup: float) -> None:
    """ICE-lite against full ICE, per subscriber, side by side."""
    (first, *_) = phases.values()
    print(
        f"\n[ice] {first['subscribers']} subscribers per phase; per subscriber, "
        + ", ".join(phases)
    )
    rows: list[tuple[Any, ...]] = [
        (
            f"STUN requests sent by the server (connecting + {warmup:.0f} s + "
            f"{first['window']:.0f} s)",
            "stun_requests",
            "{:.1f}",
        ),
        ("STUN requests sent a minute, steady", "stun_requests_per_s", "{:.2f}", 60),
        ("STUN responses sent (answers to the subscriber's checks)", "stun_responses", "{:.1f}"),
        ("STUN retransmission timers armed a second", "stun_timers_per_s", "{:.3f}"),
        ("asyncio.sleep timers a second", "sleeps_per_s", "{:.2f}"),
        ("tasks held", "tasks", "{:.2f}"),
        (
            "server CPU, millicores (at the full stream rate)",
            "full_rate_per_subscriber",
            "{:.2f}",
            1000,
        ),
        ("video fps received, median", "fps_median", "{:.1f}"),
    ]
    for label, key, form, *scale in rows:
        factor = scale[0] if scale else 1
        values = " | ".join(form.format(phase[key] * factor) for phase in phases.values())
        print(f"  {label}: {values}")


def micro_forwarding(count: int = 100, packets: int = 200) -> dict[str, float]:
    """CPU per forwarded packet of the fan-out alone, in this process, step by step.

    Real ViewerSlots and SRTP sessions (AES-256-GCM, as aiortc negotiates) on stand-in aiortc
    objects, sending to one loopback socket. The Python path (`fan_out`): the cost of the Python
    part (header rewrite, checks, copying in and out of SRTP's buffer), then + libsrtp, then + the
    sendto syscall (on loopback the kernel's receive side is charged to the sender too). Then the
    same slots on the C fan-out (`NativeViewers`), as the server runs them once steady. Every slot
    has mid "1" (as aiortc numbers a viewer's m-lines), so one template per packet serves them all.
    """
    import socket
    from types import SimpleNamespace as Fake

    from aiortc.rtcdtlstransport import State
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from media_clients import StandInSource, no_rtcp
    from pylibsrtp import Policy, Session

    from streaming.forwarder import NativeViewers, ViewerSlot, fan_out
    from streaming.header_layout import ABS_SEND_TIME_URI, MID_URI, ForwardedPacket

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender_socket.setblocking(False)
    transport = Fake(_sock=sender_socket, get_extra_info=lambda name: sender_socket)

    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)

    def make_slots(source: StandInSource) -> list[Any]:
        slots = []
        for index in range(count):
            pair = Fake(protocol=Fake(transport=transport), remote_addr=receiver.getsockname())
            session = Session(
                policy=Policy(
                    key=os.urandom(44),
                    ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
                )
            )
            dtls = Fake(
                _state=State.CONNECTED,
                _transport=Fake(_connection=Fake(_nominated={1: pair})),
                _tx_srtp=session,
            )
            transceiver = Fake(
                kind="video",
                mid="1",  # as aiortc numbers every viewer's m-lines: one extension layout
                direction="sendonly",
                sender=Fake(
                    _ssrc=index,
                    _track_id="",
                    _stream_id="",
                    _RTCRtpSender__transport=dtls,
                    _handle_rtcp_packet=None,  # wrapped, never called here
                    _send_rtcp=no_rtcp,  # wrapped (fresh_sender_reports), never called
                ),
                _codecs=[vp8],
                _headerExtensions=[Fake(uri=MID_URI, id=1), Fake(uri=ABS_SEND_TIME_URI, id=3)],
            )
            slot = ViewerSlot(transceiver)  # type: ignore[arg-type]
            slot.reserve(("speaker", "camera"), "track", "stream")
            slot.set_source(source)  # type: ignore[arg-type]
            slot.mark_negotiated()
            slots.append(slot)
        return slots

    payload = os.urandom(1100)
    sequence = 0

    def run(slots: list[Any], native: NativeViewers | None = None) -> float:
        nonlocal sequence
        start = time.process_time()
        for _ in range(packets):
            packet = ForwardedPacket(
                sequence,
                sequence * 3000,
                sequence & 1,
                97,
                payload,
                b"\x01\x02\x03",
                None,
                True,
                0,
            )
            sequence += 1
            if native is not None and native.slots:
                native.send(packet)
            python_path = [s for s in slots if not s.native]
            if python_path:
                fan_out(python_path, packet)
            while True:  # keep the receiving socket drained (not timed separately)
                try:
                    receiver.recv(2048)
                except BlockingIOError:
                    break
        return (time.process_time() - start) / (packets * count) * 1e6

    native = NativeViewers.create()
    results: dict[str, float] = {}
    if native is not None:
        steady = make_slots(StandInSource(native, codec=vp8))
        run(steady[:0] + steady, native)  # the first packet takes each slot onto the C fan-out
        assert len(native.slots) == count, "the slots did not join the C fan-out"
        results["native"] = run(steady, native)
    slots = make_slots(StandInSource(None, codec=vp8))
    results["full"] = run(slots)
    for slot in slots:
        slot._output._sendto = lambda data, address: None
    results["without_send"] = run(slots)
    for slot in slots:
        slot._output._srtp_protect = lambda context, cdata, length: 0  # copies, does not encrypt
    results["python_only"] = run(slots)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--naive", type=int, default=8)
    parser.add_argument("--processes", type=int, default=min(4, (os.cpu_count() or 2) * 2))
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--naive-duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--profile", type=float, default=4.0)
    parser.add_argument(
        "--ice",
        choices=("both", "lite", "full"),
        default="both",
        help="ICE comparison phases: the server's ICE-lite, aioice's full ICE, or both",
    )
    parser.add_argument(
        "--publisher",
        choices=("single", "simulcast"),
        default="single",
        help="what the forwarding phase's publisher sends: one stream, or three simulcast "
        "layers (q, h, f: 160x120, 320x240, 640x480)",
    )
    parser.add_argument(
        "--compare-simulcast",
        action="store_true",
        help="after the single-stream forwarding phase (and the ICE phases), a second forwarding "
        "phase with the same subscribers and a simulcast publisher, and the two side by side",
    )
    parser.add_argument(
        "--remb",
        choices=tuple(REMB_PLANS),
        default=None,
        help="the REMB the subscribers send once a second: none, 'top' (5 Mbit/s: the top "
        "layer) or 'mix' (5 Mbit/s, 700 and 300 kbit/s in turn: a third on each layer); "
        "default 'mix' when simulcast runs, else none",
    )
    parser.add_argument("--ice-subscribers", type=int, default=50)
    parser.add_argument("--ice-duration", type=float, default=10.0)
    parser.add_argument(
        "--path",
        choices=("c", "python"),
        default="c",
        help="the server's fan-out: the C extension (default) or the Python path only",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the server process's event loop (production: uvicorn's default, uvloop)",
    )
    args = parser.parse_args()
    return asyncio.run(asyncio.wait_for(orchestrate(args), 600))


if __name__ == "__main__":
    sys.exit(main())
