"""ICE-lite (RFC 8445 section 2.5) on the server's side of every peer connection.

A full ICE agent sends connectivity checks to every candidate the other side lists, so with full
ICE any client could make the server send STUN to addresses of its choosing (SECURITY 22). The
server has reachable host addresses and never needs to find a path itself, which is what ICE-lite
is for: the server's SDP says `a=ice-lite`; the server answers checks and never starts one; it is
always the controlled agent, so the client (a browser or aiortc, both full agents) controls and
nominates; and the pair the client nominates is the one used. Candidates in the client's SDP are
never used at all: the server learns the client's address from the checks it answers.

aioice 0.13 has no lite mode. `serve_ice_lite(pc)` makes every ICE connection of one server
`RTCPeerConnection` an `IceLiteConnection` as aiortc creates it, and aiortc's SDP say so; client
peer connections in the same process (tests, the benchmark) keep full ICE. The aioice attributes
`IceLiteConnection` relies on are listed in `aiortc_hooks.ICE_LITE_CONNECTION_ATTRIBUTES`, and
`internals_check.check_internals()` checks them, and checks ICE-lite by behaviour: its own server
peer connection is lite and must connect.
"""

from __future__ import annotations

import asyncio
import logging

import aioice.ice
from aioice import stun
from aioice.candidate import Candidate
from aioice.utils import random_string
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceParameters

from . import aiortc_hooks as hooks

logger = logging.getLogger(__name__)

# The client's nomination must arrive within this long after the server's ICE starts (a full
# agent gives up on its checks after about 30-40 s too).
NOMINATION_TIMEOUT = 30.0
# Consent (RFC 7675) expires 30 s after the last check the client sent on the nominated pair:
# browsers and aiortc send one every 5 s or so. The server then closes the connection, as a full
# agent does whose own consent checks go unanswered.
CONSENT_TIMEOUT = 30.0
# Authenticated checks from ever new source addresses must not grow the pair list without bound.
MAX_PAIRS = 32

_SUCCEEDED = aioice.ice.CandidatePair.State.SUCCEEDED


class IceLiteConnection(aioice.ice.Connection):
    """An aioice Connection that only answers: it sends STUN responses, never a request."""

    _consent_at: float
    _consent_timer: asyncio.TimerHandle | None
    _expiry: asyncio.Task[None] | None

    @classmethod
    def adopt(cls, connection: aioice.ice.Connection) -> None:
        """Make a freshly created aioice Connection lite (before it gathers or connects)."""
        connection.__class__ = cls
        assert isinstance(connection, IceLiteConnection)
        # The lowest tie-breaker: a check that says the client is controlled too is answered
        # 487 Role Conflict (RFC 8445 section 7.3.1.1), and the full agent takes control.
        connection._tie_breaker = 0
        connection._consent_at = 0.0
        connection._consent_timer = None
        connection._expiry = None

    # A lite agent is always the controlled one (RFC 8445 section 6.1.1); aiortc sets the role
    # from the offer and answer, and aioice switches on role conflicts: both are ignored.
    @property  # type: ignore[override]
    def ice_controlling(self) -> bool:
        return False

    @ice_controlling.setter
    def ice_controlling(self, value: bool) -> None:
        pass

    def switch_role(self, ice_controlling: bool) -> None:
        pass

    async def add_remote_candidate(self, remote_candidate: Candidate | None) -> None:
        """Signalled candidates are never paired nor resolved (an mDNS name would be looked up
        with multicast queries): the client's address is learnt from the checks it sends."""
        if remote_candidate is None:
            self._remote_candidates_end = True

    async def connect(self) -> None:
        """Wait for the client to nominate a pair by its checks; start no check of our own."""
        if not self._local_candidates_end:
            raise ConnectionError("Local candidates gathering was not performed")
        if self.remote_username is None or self.remote_password is None:
            raise ConnectionError("Remote username or password is missing")
        for early_check in self._early_checks:
            self.check_incoming(*early_check)
        self._early_checks.clear()
        self._early_checks_done = True
        try:
            result = await asyncio.wait_for(self._check_list_state.get(), NOMINATION_TIMEOUT)
        except TimeoutError:
            self._check_list_done = True
            result = aioice.ice.ICE_FAILED
        if result != aioice.ice.ICE_COMPLETED:
            raise ConnectionError("ICE negotiation failed")
        loop = asyncio.get_running_loop()
        self._consent_at = loop.time()
        self._consent_timer = loop.call_later(CONSENT_TIMEOUT, self._consent_due)

    def check_incoming(
        self, message: stun.Message, addr: tuple[str, int], protocol: aioice.ice.StunProtocol
    ) -> None:
        """A check the server has authenticated and answered (aioice's `request_received` has
        sent the response): its pair is valid, and nominated if the check says USE-CANDIDATE."""
        component = protocol.local_candidate.component
        remote = next(
            (
                c
                for c in self._remote_candidates
                if c.component == component and c.host == addr[0] and c.port == addr[1]
            ),
            None,
        )
        pair = None if remote is None else self._find_pair(protocol, remote)
        if pair is None:
            if len(self._check_list) >= MAX_PAIRS:
                return
            # A peer-reflexive candidate (RFC 8445 section 7.3.1.3): the check's source address.
            remote = Candidate(
                foundation=random_string(10),
                component=component,
                transport="udp",
                priority=message.attributes.get("PRIORITY", 0),
                host=addr[0],
                port=addr[1],
                type="prflx",
            )
            self._remote_candidates.append(remote)
            pair = aioice.ice.CandidatePair(protocol, remote)
            self._check_list.append(pair)
        pair.state = _SUCCEEDED
        nominated = self._nominated.get(component)
        if nominated is None:
            if "USE-CANDIDATE" in message.attributes:
                # RFC 8445 section 7.3.1.5: the controlling agent's choice. It is final: a later
                # nomination of another address (a spoofed source, say) does not move the media.
                pair.remote_nominated = pair.nominated = True
                self._nominated[component] = pair
                self._check_list_maybe_complete()
        elif nominated is pair:
            self._consent_at = asyncio.get_running_loop().time()

    def check_start_task(self, pair: aioice.ice.CandidatePair) -> None:
        """Never: a lite agent sends no check, triggered or otherwise."""

    async def check_start(self, pair: aioice.ice.CandidatePair) -> None:
        """Never: a lite agent sends no check, triggered or otherwise."""

    def _check_list_maybe_fail(self) -> None:
        """A lite agent has no checks of its own to fail: only the nomination timeout fails it."""

    async def query_consent(self) -> None:
        """Never: the client's checks give consent (see CONSENT_TIMEOUT); the server asks none."""

    def _consent_due(self) -> None:
        self._consent_timer = None
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        left = self._consent_at + CONSENT_TIMEOUT - loop.time()
        if left > 0:
            self._consent_timer = loop.call_later(left, self._consent_due)
            return
        logger.info("%r: no check from the client for %.0f s; closing", self, CONSENT_TIMEOUT)
        self._expiry = loop.create_task(self.close())

    async def close(self) -> None:
        if self._consent_timer is not None:
            self._consent_timer.cancel()
            self._consent_timer = None
        await super().close()


class IceLiteGatherer(RTCIceGatherer):
    """Says `a=ice-lite` in the server's SDP: aiortc writes it when the ICE parameters say lite."""

    def getLocalParameters(self) -> RTCIceParameters:
        parameters = super().getLocalParameters()
        parameters.iceLite = True
        return parameters


def serve_ice_lite(pc: RTCPeerConnection) -> None:
    """Make every ICE transport `pc` creates from now on lite (call right after creating it)."""

    def make_lite(dtls: RTCDtlsTransport) -> RTCDtlsTransport:
        ice = dtls.transport
        ice.iceGatherer.__class__ = IceLiteGatherer
        IceLiteConnection.adopt(hooks.ice_connection(ice))
        return dtls

    hooks.replace_dtls_transport_factory(pc, make_lite)
