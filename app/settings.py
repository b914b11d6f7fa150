"""Dais settings: one `Settings` read from the environment with the `DAIS_` prefix."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAIS_", env_file=".env", extra="ignore")

    # Where Dais keeps its SQLite file, its generated secret key and recordings.
    data_dir: Path = Path("var")
    # `sqlite+aiosqlite:///var/dais.db` by default; `postgresql+asyncpg://user@host/db` for PostgreSQL.
    database_url: str = ""
    # Signs invite links. Generated once into data_dir/secret_key when not given.
    secret_key: str = ""
    # What people type into their browser; used to build the links Dais prints and sends.
    base_url: str = "http://127.0.0.1:8000"
    # Websocket upgrades are refused unless their Origin is in this list (base_url is always in it).
    allowed_origins: list[str] = Field(default_factory=list)
    # Fan-out bus for the live gateway: `memory://` (one process) or `redis://host:port/db`.
    bus_url: str = "memory://"
    # Live gateway (chat/): a socket must join within live_auth_seconds; frames over
    # live_max_frame_bytes close it (1009); a socket whose outgoing queue holds live_queue_frames
    # is dropped (1013); a resume further back than live_replay_events gets a full resync.
    live_auth_seconds: float = 5.0
    live_max_frame_bytes: int = 16 * 1024
    live_queue_frames: int = 256
    live_replay_events: int = 1000
    live_history_messages: int = 50
    # Frames to a socket are held back this long and written together (chat/connection.py).
    live_cork_seconds: float = 0.005
    # A room holding this many actions not yet applied answers new ones `room.busy` (chat/writer.py).
    live_room_queue_actions: int = 500
    live_purge_every_seconds: float = 3600.0
    # How often each process stores how many people are in each of its rooms.
    live_attendance_every_seconds: float = 60.0
    # Per person and room: kind -> (burst, refills per minute).
    live_rate_limits: dict[str, tuple[int, float]] = Field(
        default_factory=lambda: {
            "chat": (5, 30.0),
            "question": (3, 6.0),
            "vote": (20, 120.0),
            "reaction": (10, 120.0),
            # Pages of older history (`room.history`).
            "history": (10, 60.0),
            # WebRTC signalling: publish, watch and answers to the server's renegotiations.
            "signal": (20, 120.0),
            # Refused actions (forbidden, unknown or malformed); see chat/limits.py.
            "refused": (20, 30.0),
        }
    )
    # Throttles on what costs most per request (app/throttle.py): name -> (hits, window in
    # seconds). Clients are counted by hashed address, in memory or Redis, never stored.
    throttles: dict[str, tuple[int, float]] = Field(
        default_factory=lambda: {
            # Sign-in tries for one account from anywhere, and from one client for any account.
            "sign-in-account": (5, 900.0),
            "sign-in-client": (20, 900.0),
            # New attendees from one client (an office behind one address registers many).
            "register-client": (30, 3600.0),
            # Live room joins per sign-in (a page reconnecting) and per client (everyone
            # behind one address reconnecting after a server restart).
            "join-sign-in": (20, 60.0),
            "join-client": (300, 60.0),
        }
    )
    # Signalling frames (`media.*`) may carry an SDP of up to 64 KiB, so they may be this large.
    live_max_signal_frame_bytes: int = 80 * 1024
    # Peer connections one person may hold at once (publishing and watching, all their tabs).
    media_max_peers_per_person: int = 4
    # A speaker whose connection drops keeps their place on stage this long.
    media_reconnect_grace_seconds: float = 30.0
    # What a speaker's camera (or screen) may send, in kbit/s: told to the speaker's browser as
    # its receiver's estimate (REMB), so its rate holds there unless its own uplink loses.
    media_max_bitrate_kbps: int = Field(default=2500, ge=100, le=20000)
    # STUN/TURN servers handed to browsers and to the media server, as RTCIceServer dicts.
    ice_servers: list[dict[str, Any]] = Field(default_factory=list)

    access_token_days: int = 30
    invite_days: int = 14
    # Organiser password for the demo event; derived from the secret key when empty.
    demo_password: str = ""

    # How `dais serve` meets the network (app/serving.py). A client must send a whole request head
    # within http_request_head_seconds of its first byte (of connecting, for a connection's first
    # request), else the connection is closed: otherwise slow senders (slowloris) hold connections
    # for ever. A head over http_max_request_head_bytes is answered 431 and the connection closed.
    http_request_head_seconds: float = 10.0
    http_max_request_head_bytes: int = 16 * 1024
    # An idle keep-alive connection is closed after this long. A reverse proxy that keeps
    # connections to Dais open must give up on them sooner (nginx: keepalive_timeout in upstream).
    http_keep_alive_seconds: int = 5
    # Open connections a process takes before answering HTTP requests with 503. Live sockets count
    # too (uvicorn counts every connection), so this must stay above the sockets one process holds
    # (5,000 measured in bench/live.py) and below its open-file limit.
    http_max_connections: int = 10_000
    # uvicorn's HTTP/1.1 parser: `auto` (httptools when installed), `httptools` or `h11`.
    http_parser: str = "auto"
    # Each live socket is pinged this often and dropped when no pong comes back in time: a closed
    # laptop stops counting as watching and its peer connections are freed, and proxies see traffic.
    live_ping_every_seconds: float = 20.0
    live_ping_timeout_seconds: float = 20.0
    # On SIGTERM, requests under way get this long to finish; live sockets are closed at once (1012)
    # and pages reconnect by themselves. Below `docker stop`'s 10 s before it kills.
    shutdown_grace_seconds: int = 5
    # Addresses (or networks) of reverse proxies in front of Dais (docs/deploy.md). From these,
    # X-Forwarded-For names the client, so throttles per client count each client, not the proxy
    # (the address is only ever kept hashed, never stored or logged). Empty: no proxy is trusted.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("live_rate_limits", "throttles")
    @classmethod
    def _keep_unnamed_limits(
        cls, value: dict[str, tuple[int, float]], info: ValidationInfo
    ) -> dict[str, tuple[int, float]]:
        """Limits left out of a configured set keep their defaults: setting one never lifts
        (or breaks) the others."""
        default = cls.model_fields[str(info.field_name)].default_factory
        assert default is not None
        return default() | value  # type: ignore[call-arg]

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'dais.db').as_posix()}"

    @cached_property
    def signing_key(self) -> bytes:
        """The secret that signs invite links: from settings, else a file made on first use."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def origins(self) -> set[str]:
        return {self.base_url.rstrip("/"), *(o.rstrip("/") for o in self.allowed_origins)}

    @property
    def cookie_secure(self) -> bool:
        return self.base_url.startswith("https://")
