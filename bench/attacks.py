"""Tries the attacks of issue 9 against a running `dais serve --demo` and prints what it answered.

Run by hand, against a server on this machine only (loopback):

    DAIS_DEMO_PASSWORD=attack-password dais serve --demo --port 8765 &
    python bench/attacks.py --base http://127.0.0.1:8765 --password attack-password

Each line names an item of issue 9 and what the server did. Run it against an older checkout to
compare. It leaves a test event, invites and attendees behind in that server's database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import time
from typing import Any

import httpx
import websockets

ORGANISER = "events@westminster-insight.example"


def report(item: str, what: str) -> None:
    print(f"{item:<28} {what}", flush=True)


class Attack:
    def __init__(self, base: str, password: str) -> None:
        self.base = base.rstrip("/")
        self.password = password
        self.origin = {"Origin": self.base}
        self.organiser = httpx.AsyncClient(base_url=self.base, headers=self.origin, timeout=30)

    async def setup(self) -> None:
        signed_in = await self.organiser.post(
            "/api/auth/sign-in", json={"email": ORGANISER, "password": self.password}
        )
        signed_in.raise_for_status()
        self.event = (await self.organiser.get("/api/events/mine")).json()[0]
        agenda = (await self.organiser.get(f"/api/events/{self.event['id']}/agenda")).json()
        self.session = agenda["sessions"][0]["id"]

    def live_url(self) -> str:
        return self.base.replace("http", "ws", 1) + f"/api/sessions/{self.session}/live"

    async def socket(self, cookie: str) -> Any:
        ws = await websockets.connect(
            self.live_url(),
            origin=self.base,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"dais_session={cookie}"},
            max_size=None,
        )
        await ws.send(json.dumps({"id": "join", "type": "room.join"}))
        await self.reply(ws, "join")
        return ws

    @staticmethod
    async def reply(ws: Any, request_id: object, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if frame.get("type") in ("ok", "error") and frame.get("id") == request_id:
                return frame

    async def attendee(self, name: str) -> str:
        """A new attendee's session cookie."""
        return (await self.registered(name))[1]

    async def registered(self, name: str) -> tuple[str, str]:
        """A new attendee's id and session cookie."""
        async with httpx.AsyncClient(base_url=self.base, headers=self.origin) as browser:
            made = await browser.post(
                f"/api/events/{self.event['id']}/register", json={"display_name": name}
            )
            made.raise_for_status()
            return made.json()["id"], made.cookies["dais_session"]

    async def invited(self, role: str, name: str) -> tuple[str, str]:
        made = await self.organiser.post(
            f"/api/sessions/{self.session}/invites", json={"role": role, "display_name": name}
        )
        made.raise_for_status()
        invite = made.json()
        path = invite["url"].split("/invite/", 1)[1]
        async with httpx.AsyncClient(base_url=self.base, headers=self.origin) as browser:
            accepted = await browser.post(f"/invite/{path}")
            return invite["participant_id"], accepted.cookies["dais_session"]

    # -- the items ------------------------------------------------------------------------------

    async def revocation(self) -> None:
        person_id, cookie = await self.invited("moderator", "Morgan Moderator")
        ws = await self.socket(cookie)
        revoked = await self.organiser.post(
            f"/api/events/{self.event['id']}/people/{person_id}/revoke"
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(2.0):
                while True:
                    await ws.recv()
        except TimeoutError:
            pass
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            report(
                "1 revocation",
                f"revoke {revoked.status_code}; socket closed {code} {reason} "
                f"{(time.monotonic() - started) * 1000:.0f} ms after the revoke was answered",
            )
            return
        await ws.send(json.dumps({"id": 1, "type": "announcement.post", "text": "still here"}))
        answer = (await self.reply(ws, 1)).get("code", "ok")
        report("1 revocation", f"revoke {revoked.status_code}; 2 s later an announcement: {answer}")

    async def nesting(self) -> None:
        ws = await self.socket(await self.attendee("Nesting Tester"))
        await ws.send("[" * 1000 + "]" * 1000)
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            report("2 1,000-level frame", f"{frame.get('type')} {frame.get('code')}")
        except websockets.ConnectionClosed as closed:
            report("2 1,000-level frame", f"closed {closed.rcvd.code if closed.rcvd else 1006}")
        except TimeoutError:
            report("2 1,000-level frame", "no answer in 5 s")

    async def dates(self) -> None:
        made = await self.organiser.post(
            "/api/events",
            json={
                "title": "Far future",
                "slug": f"far-future-{int(time.time())}",
                "starts_on": "9999-12-31",
                "ends_on": "9999-12-31",
                "timezone": "Pacific/Kiritimati",
            },
        )
        answer = f"create {made.status_code}"
        if made.status_code < 300:
            added = await self.organiser.post(
                f"/api/events/{made.json()['id']}/sessions",
                json={
                    "title": "Late",
                    "kind": "talk",
                    "starts_at": "9999-12-31T10:00:00+14:00",
                    "ends_at": "9999-12-31T11:00:00+14:00",
                },
            )
            answer += f", add session {added.status_code}"
        else:
            answer += f" {made.json()['error'].get('fields')}"
        report("3 year 9999 in UTC+14", answer)

    async def audit_flood(self) -> None:
        # The organiser's real mute first, then the flood meant to push it out of sight.
        organiser_ws = await self.socket(self.organiser.cookies["dais_session"])
        target = (await self.registered("Muted Attendee"))[0]
        await organiser_ws.send(
            json.dumps({"id": "mute", "type": "person.mute", "person_id": target, "minutes": 5})
        )
        mute = (await self.reply(organiser_ws, "mute")).get("code", "ok")
        ws = await self.socket(await self.attendee("Flooding Attendee"))
        answers: dict[str, int] = {}
        closed = ""
        try:
            for n in range(1100):
                await ws.send(json.dumps({"id": n, "type": "person.unmute", "person_id": "x" * 32}))
            while sum(answers.values()) < 1100:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("type") == "error":
                    answers[frame["code"]] = answers.get(frame["code"], 0) + 1
        except websockets.ConnectionClosed as end:
            closed = f", closed {end.rcvd.code} {end.rcvd.reason}" if end.rcvd else ", dropped"
        except TimeoutError:
            closed = ", no more answers"
        log = await self.organiser.get(f"/api/events/{self.event['id']}/audit")
        rows = log.json()
        mutes = [r for r in rows if r["action"] == "person.mute" and r["outcome"] == "done"]
        done = await self.organiser.get(f"/api/events/{self.event['id']}/audit?outcome=done")
        done_rows = [r for r in done.json() if r["action"] == "person.mute"]
        report(
            "4 1,100 refused unmutes",
            f"answers {answers}{closed}; real mute {mute}; audit rows {len(rows)}, "
            f"mute on first page: {bool(mutes)}; ?outcome=done rows with it: {len(done_rows)}",
        )

    async def sign_in(self) -> None:
        async def try_(password: str) -> int:
            tried = await self.organiser.post(
                "/api/auth/sign-in", json={"email": ORGANISER, "password": password}
            )
            return tried.status_code

        bystander = await self.socket(await self.attendee("Bystander"))
        trips: list[float] = []
        stop = asyncio.Event()

        async def ping() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                await (await bystander.ping())
                trips.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        pinger = asyncio.create_task(ping())
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as other:
            concurrent = await asyncio.gather(
                *(
                    other.post("/api/auth/sign-in", json={"email": f"x{n}@e.org", "password": "x"})
                    for n in range(10)
                )
            )
        stop.set()
        await pinger
        report(
            "5 10 wrong sign-ins at once",
            f"{sorted({r.status_code for r in concurrent})}; bystander ping "
            f"median {statistics.median(trips) * 1000:.0f} ms, max {max(trips) * 1000:.0f} ms",
        )
        statuses = [await try_("wrong password") for _ in range(100)]
        right = await try_(self.password)
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        report("5 100 wrong, then right", f"{counts}; right password {right}")
        looper = await self.attendee("Join Looper")  # before registrations run out
        registrations = []
        async with httpx.AsyncClient(base_url=self.base, headers=self.origin) as client:
            for n in range(200):
                made = await client.post(
                    f"/api/events/{self.event['id']}/register", json={"display_name": f"Reg {n}"}
                )
                registrations.append(made.status_code)
        counts = {s: registrations.count(s) for s in sorted(set(registrations))}
        report("5 200 registrations", str(counts))
        cookie = looper
        joins: dict[str, int] = {}
        started = time.perf_counter()
        for _ in range(100):
            async with websockets.connect(
                self.live_url(),
                origin=self.base,  # type: ignore[arg-type]
                additional_headers={"Cookie": f"dais_session={cookie}"},
            ) as ws:
                await ws.send(json.dumps({"id": "join", "type": "room.join"}))
                code = (await self.reply(ws, "join")).get("code", "ok")
                joins[code] = joins.get(code, 0) + 1
        report(
            "5 100 join/leave cycles",
            f"{joins} in {time.perf_counter() - started:.1f} s",
        )

    async def forgery(self) -> None:
        made = await self.organiser.post(
            f"/api/sessions/{self.session}/invites",
            json={"role": "speaker", "display_name": "Forgery Target"},
        )
        invite = made.json()
        forged = await self.organiser.post(
            f"/api/invites/{invite['id']}/revoke", headers={"Origin": "http://127.0.0.1:1"}
        )
        made = await self.organiser.post(
            f"/api/sessions/{self.session}/invites",
            json={"role": "speaker", "display_name": "Login Forgery Target"},
        )
        path = made.json()["url"].split("/invite/", 1)[1]
        async with httpx.AsyncClient(base_url=self.base) as victim:
            login = await victim.post(f"/invite/{path}", headers={"Origin": "https://evil.example"})
        report(
            "6 forged requests",
            f"revoke from another origin {forged.status_code}; "
            f"invite posted from another site {login.status_code}"
            f"{' (signed in)' if 'dais_session' in login.cookies else ''}",
        )

    async def names(self) -> None:
        answers = []
        async with httpx.AsyncClient(base_url=self.base, headers=self.origin) as browser:
            for name in ["Saskia Garner", "\u202eenraG aikssaS", "   ", "Zero\u200bWidth"]:
                made = await browser.post(
                    f"/api/events/{self.event['id']}/register", json={"display_name": name}
                )
                answers.append(f"{name!r}: {made.status_code}")
        report("9 display names", "; ".join(answers))

    async def slowloris(self) -> None:
        host, port = self.base.split("//", 1)[1].split(":")
        loop = asyncio.get_running_loop()

        async def drip() -> bool:
            sock = socket.create_connection((host, int(port)))
            sock.setblocking(False)
            await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            try:
                for _ in range(20):
                    await asyncio.sleep(1.0)
                    await loop.sock_sendall(sock, b"a")
                return True  # still open after 20 s
            except OSError:
                return False
            finally:
                sock.close()

        open_after = await asyncio.gather(*(drip() for _ in range(30)))
        report("10 30 slow headers", f"{sum(open_after)} of 30 still open after 20 s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8765")
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    assert args.base.startswith(("http://127.", "http://localhost")), "loopback only"
    attack = Attack(args.base, args.password)
    await attack.setup()
    for item in (
        attack.revocation,
        attack.nesting,
        attack.dates,
        attack.audit_flood,
        attack.forgery,
        attack.names,
        attack.slowloris,
        attack.sign_in,
    ):
        try:
            await item()
        except Exception as error:  # report and go on: an old server may fail in many ways
            report(item.__name__, f"failed: {type(error).__name__}: {error}"[:200])


if __name__ == "__main__":
    asyncio.run(main())
