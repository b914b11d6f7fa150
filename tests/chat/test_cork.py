"""The cork (chat/connection.py): a quiet room's frames wait only a few milliseconds, and a process
whose sockets would need more writes a second than its budget writes them less often, never
later than the longest wait."""

from __future__ import annotations

import asyncio

from chat.connection import Cork


class Socket:
    """Stands in for a directly written socket: the cork only ever calls `uncork`."""

    def __init__(self) -> None:
        self.written_at: list[float] = []

    def uncork(self) -> bool:
        self.written_at.append(asyncio.get_running_loop().time())
        return True


def busy_round(cork: Cork, sockets: list[Socket] | None = None) -> list[Socket]:
    """Sixty sockets with frames waiting at once (three times a 400/s, 50 ms budget)."""
    sockets = sockets or [Socket() for _ in range(60)]
    for socket in sockets:
        cork.hold(socket)
    return sockets


async def test_a_quiet_room_waits_only_the_cork_time() -> None:
    cork = Cork(0.005, writes_per_s=3000, longest=0.025)
    loop = asyncio.get_running_loop()
    for _ in range(5):
        socket = Socket()
        held = loop.time()
        cork.hold(socket)
        await asyncio.sleep(0.05)
        assert len(socket.written_at) == 1
        # At least the cork time; well under the longest wait (a loaded machine adds a little).
        assert 0.004 <= socket.written_at[0] - held < 0.020


async def test_a_busy_process_writes_within_its_budget_and_the_longest_wait() -> None:
    # 400 writes a second, a longest wait of 50 ms: a budget of 20 writes at a time.
    cork = Cork(0.005, writes_per_s=400, longest=0.05)
    loop = asyncio.get_running_loop()
    sockets = [Socket() for _ in range(60)]
    rounds: list[float] = []
    for _ in range(6):
        held = loop.time()
        for socket in sockets:
            cork.hold(socket)
        while sockets[-1].written_at == [] or len(sockets[-1].written_at) < len(rounds) + 1:
            await asyncio.sleep(0.002)
        rounds.append(sockets[-1].written_at[-1] - held)
    # Every socket was written once a round, together, however over budget the process was.
    assert all(len(socket.written_at) == 6 for socket in sockets)
    # The first round had the budget's 20 writes in hand and 40 more to wait for (100 ms): it
    # waited the longest wait instead. Each later round came at once with nothing in hand, and
    # waited the longest wait too, rather than the cork time.
    assert all(0.045 <= wait < 0.09 for wait in rounds), rounds


async def test_the_budget_comes_back_when_the_process_is_quiet_again() -> None:
    cork = Cork(0.005, writes_per_s=400, longest=0.05)
    loop = asyncio.get_running_loop()
    busy = busy_round(cork)
    await asyncio.sleep(0.1)
    assert all(socket.written_at for socket in busy)
    await asyncio.sleep(0.2)  # 80 writes' worth of budget, more than it holds (20)
    quiet = Socket()
    held = loop.time()
    cork.hold(quiet)
    await asyncio.sleep(0.05)
    assert 0.004 <= quiet.written_at[0] - held < 0.020


async def test_a_reply_goes_out_after_the_cork_time_even_over_budget() -> None:
    cork = Cork(0.005, writes_per_s=400, longest=0.05)
    loop = asyncio.get_running_loop()
    busy = busy_round(cork)
    await asyncio.sleep(0.06)
    # Over budget again: the next round of broadcasts waits; a socket with a reply does not.
    busy_round(cork, busy)
    answered = Socket()
    held = loop.time()
    cork.hold(answered)
    cork.hurry(answered)
    await asyncio.sleep(0.02)
    assert len(answered.written_at) == 1 and answered.written_at[0] - held < 0.015
    assert all(len(socket.written_at) == 1 for socket in busy)  # still waiting their turn
    await asyncio.sleep(0.06)
    assert all(len(socket.written_at) == 2 for socket in busy)
