"""Dais settings: one `Settings` read from the environment with the `DAIS_` prefix."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field
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
    # STUN/TURN servers handed to browsers and to the media server, as RTCIceServer dicts.
    ice_servers: list[dict[str, Any]] = Field(default_factory=list)

    access_token_days: int = 30
    invite_days: int = 14
    # Organiser password for the demo event; derived from the secret key when empty.
    demo_password: str = ""

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
    def origins(self) -> set[str]:
        return {self.base_url.rstrip("/"), *(o.rstrip("/") for o in self.allowed_origins)}

    @property
    def cookie_secure(self) -> bool:
        return self.base_url.startswith("https://")
