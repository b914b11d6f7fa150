"""WebRTC media for Dais: an RTP-level forwarder (SFU) and session recorder built on aiortc."""

from .errors import MediaError
from .port import (
    Answer,
    Answered,
    CloseConnection,
    Closed,
    Command,
    Describe,
    EndSession,
    LocalMedia,
    MediaPort,
    Mute,
    Offer,
    OfferToViewer,
    Outcome,
    PresenterInfo,
    Publish,
    SetLive,
    StageSnapshot,
    TrackInfo,
    Watch,
)
from .server import MediaServer

__all__ = [
    "Answer",
    "Answered",
    "CloseConnection",
    "Closed",
    "Command",
    "Describe",
    "EndSession",
    "LocalMedia",
    "MediaError",
    "MediaPort",
    "MediaServer",
    "Mute",
    "Offer",
    "OfferToViewer",
    "Outcome",
    "PresenterInfo",
    "Publish",
    "SetLive",
    "StageSnapshot",
    "TrackInfo",
    "Watch",
]
