"""WebRTC media for Dais: an RTP-level forwarder (SFU) and session recorder built on aiortc."""

from .errors import MediaError
from .local_media import LocalMedia
from .port import (
    Answer,
    Answered,
    CloseConnection,
    Closed,
    Command,
    Describe,
    EndSession,
    LayersToPublisher,
    LocalMediaPort,
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
    "LocalMediaPort",
    "MediaError",
    "MediaPort",
    "MediaServer",
    "Mute",
    "Offer",
    "LayersToPublisher",
    "OfferToViewer",
    "Outcome",
    "PresenterInfo",
    "Publish",
    "SetLive",
    "StageSnapshot",
    "TrackInfo",
    "Watch",
]
