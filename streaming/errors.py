"""Domain errors raised by the media server; the gateway maps each `code` to an error frame."""

from __future__ import annotations


class MediaError(Exception):
    """A refused media request, with a stable dotted code such as ``media.sdp_too_large``."""

    code = "media.error"

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code


SDP_TOO_LARGE = "media.sdp_too_large"
TOO_MANY_PEERS = "media.too_many_peers"
PEER_NOT_FOUND = "media.peer_not_found"
BAD_SDP = "media.bad_sdp"
BAD_KIND = "media.bad_kind"
