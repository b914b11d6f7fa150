"""Domain errors raised by the media server; the gateway maps each `code` to an error frame."""

from __future__ import annotations

from app.errors import DomainError


class MediaError(DomainError):
    """A refused media request, with a stable dotted code such as ``media.sdp_too_large``.

    A domain error like any other, so the gateway turns it into an error frame in its one place.
    """

    status = 422

    def __init__(self, code: str, message: str = "", *, field: str | None = None) -> None:
        super().__init__(code, message or code, field=field)


SDP_TOO_LARGE = "media.sdp_too_large"
TOO_MANY_PEERS = "media.too_many_peers"
PEER_NOT_FOUND = "media.peer_not_found"
BAD_SDP = "media.bad_sdp"
BAD_KIND = "media.bad_kind"
# Publishing from a client that may not publish: refused before any peer connection exists.
FORBIDDEN = "media.forbidden"
UNAVAILABLE = "media.unavailable"  # the process hosting the session's stage did not answer
RELAY_FAILED = "media.failed"  # the stage's host failed the call (details in its log)
