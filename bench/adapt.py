"""Attendees on slow links: three Chromium attendees watch one Chromium speaker's simulcast camera,
one unimpaired, one whose download is capped at 600 kbit/s and one at 300 kbit/s, side by side.

    sudo .venv/bin/python bench/adapt.py [--seconds 30]

Needs root: each capped attendee's Chromium runs in a network namespace this script makes
(`ip netns`, a veth pair into a bridge on 10.77.0.0/24), and `tc ... tbf` caps what reaches it.
Dais listens on the bridge's 10.77.0.1; the speaker and the unimpaired attendee are in this
namespace. Nothing leaves the machine; the namespaces, links and the server are removed at the
end, however it ends.

For each attendee, from its page (`requestVideoFrameCallback` on the stage's video) and the layer
the page is told it gets (`data-layer`, from `media.quality`): the time from its first picture
to its first picture of a lower layer than the unimpaired attendee's (`switch_s`: 0 when it
starts lower), its longest and total freezes in the window after `--settle` (no new frame for
more than 200 ms), the frames per second of the top layer (its picture size) at the unimpaired
attendee,
and what the server offered each capped attendee's link beyond its cap (`tc -s`: bytes sent plus
packets dropped at the cap, in kbit/s over the window). The last line is the 600 kbit/s
attendee's: `cap_kbps=600 switch_s=N freeze_max_ms=N freeze_total_s=N top_layer_fps=N
egress_over_cap=N`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, async_playwright  # noqa: E402

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Contexts, DaisServer  # noqa: E402
from tests.browser.live_helpers import new_story  # noqa: E402
from tests.browser.slow_links import (  # noqa: E402
    WATCH,
    Link,
    Network,
    dais_on,
    freezes,
    network,
    tc_counts,
)

NOW = "performance.now() / 1000"


async def main(args: argparse.Namespace, server: DaisServer, links: list[Link]) -> None:
    async with async_playwright() as playwright:
        secure = f"--unsafely-treat-insecure-origin-as-secure={server.base_url}"
        here = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, secure]
        )
        behind = [
            await playwright.chromium.launch(
                executable_path=str(link.chromium), args=[*CHROMIUM_ARGS, secure]
            )
            for link in links
        ]
        story = await new_story(Contexts(here, server), server, "Slow links")
        speaker = await story.invited("speaker", "Dr Ada Example")
        chair = await story.invited("chair", "Casey Chair")
        pages: dict[str, Page] = {"unimpaired": await story.attendee("Robin")}
        for link, browser in zip(links, behind, strict=True):
            other = replace(story, contexts=Contexts(browser, server))
            pages[f"{link.cap_kbps} kbit/s"] = await other.attendee(f"Cap {link.cap_kbps}")
        await (
            speaker.locator('[data-slot="publish-state"]')
            .filter(has_text="reaches Dais")
            .wait_for(timeout=30_000)
        )
        for page in pages.values():
            await page.evaluate(WATCH)
        tile = chair.locator(".speaker-tile", has_text="Dr Ada Example")
        await tile.get_by_role("button", name="Put Dr Ada Example live").click()
        live_at = {name: await page.evaluate(NOW) for name, page in pages.items()}
        # The first seconds: the speaker's browser ramps its layers up; then the window.
        await asyncio.sleep(args.settle)
        before = {link.name: tc_counts(link) for link in links}
        window_start = {name: await page.evaluate(NOW) for name, page in pages.items()}
        print(f"window from {time.monotonic():.2f} (server clock)", flush=True)
        await asyncio.sleep(args.seconds)
        after = {link.name: tc_counts(link) for link in links}
        seen = {
            name: (await page.evaluate("window.__frames"), await page.evaluate("window.__layers"))
            for name, page in pages.items()
        }
        # What the slowest attendee sees (its tile says the picture is reduced).
        shot = ROOT / "tests" / "artifacts" / "attendee-reduced-quality.png"
        shot.parent.mkdir(exist_ok=True)
        await pages[f"{links[-1].cap_kbps} kbit/s"].screenshot(path=shot)
        for browser in (here, *behind):
            await browser.close()
    top_width = max((width for _, width in seen["unimpaired"][0]), default=0)
    results: dict[str, dict[str, Any]] = {}
    for name, (frames, layers) in seen.items():
        end = window_start[name] + args.seconds
        longest, total, longest_at = freezes(frames, window_start[name], end)
        in_window = [t for t, _ in frames if window_start[name] <= t <= end]
        shown = [t for t, _ in frames if t >= live_at[name]]
        lower = [t for t, width in frames if t >= live_at[name] and width < top_width]
        results[name] = {
            "first_picture_s": round(shown[0] - live_at[name], 2) if shown else None,
            # From its first picture to its first of a lower layer than the top.
            "switch_s": round(lower[0] - shown[0], 2) if lower else None,
            "freeze_max_ms": round(longest * 1000),
            "freeze_total_s": round(total, 2),
            "longest_freeze_at_s": round(longest_at, 1),
            "freezes_at_s": [
                (round(a - window_start[name], 1), round(b - a, 2))
                for a, b in zip(in_window, in_window[1:], strict=False)
                if b - a > 0.3
            ],
            "fps": round(len(in_window) / args.seconds, 1),
            # Frames of the top layer's size only (a viewer that dipped to a lower layer shows
            # as many frames, of a smaller picture).
            "top_layer_fps": round(
                sum(
                    1
                    for t, width in frames
                    if window_start[name] <= t <= end and width == top_width
                )
                / args.seconds,
                1,
            ),
            "layers told": [layer for _, layer in layers if layer],
            "widths": sorted({width for t, width in frames if window_start[name] <= t <= end}),
        }
    for link in links:
        sent = after[link.name][0] - before[link.name][0]
        dropped = after[link.name][1] - before[link.name][1]
        offered_kbps = (sent + dropped * 1200) * 8 / args.seconds / 1000
        figures = results[f"{link.cap_kbps} kbit/s"]
        figures["offered_kbps"] = round(offered_kbps)
        figures["egress_over_cap"] = round(max(0.0, offered_kbps - link.cap_kbps))
    for name, figures in results.items():
        print(f"{name}: {figures}")
    capped = results["600 kbit/s"]
    switch = capped["switch_s"] if capped["switch_s"] is not None else -1
    print(
        f"cap_kbps=600 switch_s={switch:.1f} freeze_max_ms={capped['freeze_max_ms']}"
        f" freeze_total_s={capped['freeze_total_s']:.1f}"
        f" top_layer_fps={results['unimpaired']['top_layer_fps']:.1f}"
        f" egress_over_cap={capped['egress_over_cap']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the window")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/adapt.py makes network namespaces: run it as root")
    capped = [Link("dais-v600", 600, "10.77.0.2"), Link("dais-v300", 300, "10.77.0.3")]
    with (
        tempfile.TemporaryDirectory() as tmp,
        network(Network("dais-br0", "10.77.0.1", capped)),
        dais_on("10.77.0.1", Path(tmp), 18500 + os.getpid() % 1000) as running,
    ):
        asyncio.run(main(arguments, running, capped))
