"""WebRTC media for Dais: an RTP-level forwarder (SFU) and session recorder built on aiortc."""

from .errors import MediaError
from .server import MediaServer

__all__ = ["MediaError", "MediaServer"]
