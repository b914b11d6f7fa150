"""Stories about recordings: the organiser lists and downloads them; attendees replay if allowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av

from app.recordings.service import store_recording
from tests.app.helpers import organiser_with_event


def write_recording(path, seconds: int = 2) -> None:
    """A small VP8 Matroska file, as the media server writes (it muxes without encoding)."""
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * 10):
            frame = av.VideoFrame(64, 48, "yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


async def test_the_organiser_lists_and_downloads_recordings_and_attendees_replay_if_allowed(
    app, clients, settings
):
    async with clients.browser() as organiser, clients.browser() as attendee:
        story = await organiser_with_event(app, organiser)
        event_id = story.event["id"]
        settings.recordings_dir.mkdir(parents=True)
        path = settings.recordings_dir / f"{story.session['id']}-20270304T101500Z.mkv"
        write_recording(path)
        started = datetime(2027, 3, 4, 10, 15, tzinfo=UTC)
        async with app.state.sessionmaker() as db:
            await store_recording(
                db,
                session_id=story.session["id"],
                path=path,
                started_at=started,
                ended_at=started + timedelta(seconds=2),
            )

        (listed,) = (await organiser.get(f"/api/events/{event_id}/recordings")).json()
        assert listed["session_id"] == story.session["id"]
        assert abs(listed["duration_seconds"] - 2.0) < 0.2
        assert listed["size_bytes"] == path.stat().st_size
        download = await organiser.get(listed["url"])
        assert download.status_code == 200
        assert download.headers["content-type"] == "video/x-matroska"
        assert download.content == path.read_bytes()

        await attendee.post(f"/api/events/{event_id}/register", json={"display_name": "Sam"})
        refused = await attendee.get(listed["url"])
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "recording.replays_disabled"
        assert (await attendee.get(f"/api/events/{event_id}/recordings")).status_code == 403

        await organiser.patch(f"/api/events/{event_id}", json={"replays_enabled": True})
        assert len((await attendee.get(f"/api/events/{event_id}/recordings")).json()) == 1
        assert (await attendee.get(listed["url"])).content == path.read_bytes()

        async with clients.browser() as stranger:
            assert (await stranger.get(listed["url"])).status_code == 403
            missing = await stranger.get("/api/recordings/nope/file")
            assert missing.json()["error"]["code"] == "recording.not_found"
