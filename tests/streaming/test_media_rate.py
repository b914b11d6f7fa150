"""A speaker's sending rate holds at the configured ceiling (`DAIS_MEDIA_MAX_BITRATE_KBPS`)
rather than following the server's loop: aiortc's own receive-side estimate, timed by a busy
event loop, told speakers anything from 30 to 800 kbit/s on an idle loopback link."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci
from media_clients import Conference


@pytest.fixture
async def capped(tmp_path: pathlib.Path) -> AsyncIterator[Conference]:
    conference = Conference(tmp_path / "recordings", max_bitrate_kbps=800)
    yield conference
    await conference.close()


async def test_a_speaker_is_told_the_ceiling_every_second_and_nothing_else(
    capped: Conference,
) -> None:
    pc = await capped.publish("s1", "speaker")
    (video,) = [t for t in pc.getTransceivers() if t.kind == "video"]
    sender = video.sender
    told: list[int] = []
    handle = sender._handle_rtcp_packet

    async def listen(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            if sender._ssrc in ssrcs:
                told.append(bitrate)
        await handle(packet)

    sender._handle_rtcp_packet = listen
    await asyncio.sleep(4.5)
    # Once a second (the first on the first packet), always the ceiling.
    assert 3 <= len(told) <= 6, told
    assert set(told) == {800_000}
    # aiortc's encoder, standing in for the speaker's browser, follows it.
    assert sender._RTCRtpSender__encoder.target_bitrate == 800_000
