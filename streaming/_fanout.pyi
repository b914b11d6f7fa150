"""Types for streaming/_fanout.c, the forwarder's per-packet fan-out in C."""

from collections.abc import Sequence
from typing import Any

MAX_PACKET: int

Counters = tuple[int, int, int, int]  # packets, octets, last sequence number, last timestamp

class Fanout:
    def __init__(
        self,
        protect_address: int,
        connected: object,
        names: tuple[str, str, str, str, str, str],
    ) -> None: ...
    def __len__(self) -> int: ...
    def add(
        self,
        slot: object,
        sender: object,
        dtls: object,
        nominated: dict[int, Any],
        pair: object,
        session: object,
        context: int,
        fd: int,
        host: str,
        port: int,
        ssrc: int,
        payload_type: int,
        seq_offset: int,
        ts_offset: int,
        picture_id_offset: int,
        tl0_offset: int,
        layout: int,
        packets: int,
        octets: int,
        last_seq: int,
        last_ts: int,
        /,
    ) -> bool: ...
    def remove(self, slot: object, /) -> Counters | None: ...
    def counters(self, slot: object, /) -> Counters | None: ...
    def clear(self) -> list[tuple[Any, Counters]]: ...
    def send(
        self,
        sequence_number: int,
        timestamp: int,
        ntp_time: int,
        size: int,
        templates: Sequence[tuple[int, int, bytes]],
        picture_id_length: int,
        picture_id: int,
        tl0_position: int,
        tl0: int,
        /,
    ) -> list[tuple[Any, Counters]] | None: ...
