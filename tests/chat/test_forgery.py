"""Cross-site request forgery against a running server (SECURITY 24): a page on another origin,
of another site or of the same site, cannot act with a signed-in browser's cookie, nor sign a
browser in as someone else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.chat.conftest import ORGANISER_PASSWORD, Server, World

# Same site (127.0.0.1), another origin (another port); and another site altogether.
FOREIGN_ORIGINS = ["http://127.0.0.1:1", "https://evil.example"]


@asynccontextmanager
async def signed_in_organiser(server: Server, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The organiser's browser: signed in with a cookie from Dais's own sign-in page."""
    async with httpx.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as browser:
        signed_in = await browser.post(
            "/api/auth/sign-in",
            json={"email": world.organiser_email, "password": ORGANISER_PASSWORD},
        )
        assert signed_in.status_code == 200
        yield browser


async def make_invite(browser: httpx.AsyncClient, world: World) -> dict:
    made = await browser.post(
        f"/api/sessions/{world.session_id}/invites",
        json={"role": "speaker", "display_name": "Dr Lorraine Sheridan"},
    )
    assert made.status_code == 201, made.text
    return made.json()


@pytest.mark.parametrize("foreign", FOREIGN_ORIGINS)
async def test_a_forged_revoke_and_sign_out_are_refused(
    server: Server, world: World, foreign: str
) -> None:
    """SECURITY 24: a form posted from another origin with the organiser's cookie gets 403
    `csrf.origin`: the invite is not revoked and the organiser stays signed in. From Dais's own
    pages (by `Origin`, or `Referer` when a browser sends no `Origin`) the same requests work;
    with neither header a cookie request is refused."""
    async with signed_in_organiser(server, world) as browser:
        invite = await make_invite(browser, world)
        forged = await browser.post(
            f"/api/invites/{invite['id']}/revoke", headers={"Origin": foreign}
        )
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "csrf.origin"
        forged_out = await browser.post(
            "/api/auth/sign-out", headers={"Origin": foreign, "Content-Type": "text/plain"}
        )
        assert forged_out.status_code == 403
        assert (await browser.get("/api/auth/me")).status_code == 200
        # The invite was not revoked: its page still offers to continue.
        page = await browser.get(invite["url"].replace(server.settings.base_url, ""))
        assert page.status_code == 200 and "Continue" in page.text

        async with httpx.AsyncClient(base_url=server.url, cookies=browser.cookies) as neither:
            headless = await neither.post(f"/api/invites/{invite['id']}/revoke")
        assert headless.status_code == 403  # neither Origin nor Referer
        by_referer = httpx.AsyncClient(
            base_url=server.url,
            cookies=browser.cookies,
            headers={"Referer": f"{server.url}/organiser"},
        )
        async with by_referer:
            revoked = await by_referer.post(f"/api/invites/{invite['id']}/revoke")
        assert revoked.status_code == 204


@pytest.mark.parametrize("foreign", FOREIGN_ORIGINS)
async def test_login_forgery_is_refused(server: Server, world: World, foreign: str) -> None:
    """SECURITY 24: another site cannot sign a victim's browser in as an identity it chose:
    posting the attacker's invite link, registering, or signing in from a foreign origin gets
    403, sets no cookie and spends nothing; the invite still works from Dais's own page."""
    async with signed_in_organiser(server, world) as browser:
        invite = await make_invite(browser, world)
    token_path = invite["url"].replace(server.settings.base_url, "")
    async with httpx.AsyncClient(base_url=server.url, headers={"Origin": foreign}) as victim:
        for path, body in [
            (token_path, None),
            (f"/api/events/{world.event_id}/register", {"display_name": "Attacker's pick"}),
            (
                "/api/auth/sign-in",
                {"email": world.organiser_email, "password": ORGANISER_PASSWORD},
            ),
        ]:
            forged = await victim.post(path, json=body)
            assert forged.status_code == 403, (path, forged.text)
            assert forged.json()["error"]["code"] == "csrf.origin"
            assert "dais_session" not in forged.cookies
    async with httpx.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as own:
        accepted = await own.post(token_path)
        assert accepted.status_code == 303 and "dais_session" in accepted.cookies


async def test_bearer_token_calls_are_unaffected(server: Server, world: World) -> None:
    """SECURITY 24: API clients with `Authorization: Bearer` are not forgeable by a page and
    work from anywhere, with or without an `Origin`."""
    async with httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {world.organiser}", "Origin": "https://evil.example"},
    ) as api:
        invite = await make_invite(api, world)
        assert (await api.post(f"/api/invites/{invite['id']}/revoke")).status_code == 204
