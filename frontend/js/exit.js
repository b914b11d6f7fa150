// "Exit this page" (GOV.UK pattern): first in tab order, also Shift pressed three times within a
// second. Clears what the browser holds for Dais and replaces this page with a neutral site.

import { api } from "./api.js";

export const NEUTRAL_URL = "https://www.bbc.co.uk/weather";

// Modules that hold something open (the live socket, peer connections, camera) register a closer.
const closers = new Set();
export function onExit(close) {
  closers.add(close);
  return () => closers.delete(close);
}

let leaving = false;

export function exitNow() {
  if (leaving) return;
  leaving = true;
  // Hide the page at once: what matters is that nothing stays on screen.
  document.documentElement.classList.add("exiting");
  document.title = "BBC Weather";
  for (const close of closers) {
    try { close(); } catch { /* leaving anyway */ }
  }
  api("/api/auth/sign-out", { method: "POST", keepalive: true }).catch(() => {});
  try { sessionStorage.clear(); } catch { /* storage may be disabled */ }
  try { localStorage.clear(); } catch { /* storage may be disabled */ }
  // replace(), not assign(): this page does not stay in the back history.
  location.replace(NEUTRAL_URL);
}

export function installExit() {
  const control = document.getElementById("exit-this-page");
  if (control) {
    control.addEventListener("click", (event) => {
      event.preventDefault();
      exitNow();
    });
  }
  let presses = [];
  document.addEventListener("keydown", (event) => {
    // Shift used to type capitals is not the gesture: any other key starts the count again.
    if (event.key !== "Shift") {
      presses = [];
      return;
    }
    if (event.repeat) return;
    const now = performance.now();
    presses = presses.filter((t) => now - t < 1000);
    presses.push(now);
    if (presses.length >= 3) exitNow();
  }, true);
  // Coming back through the back/forward cache would show the page again: leave again.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && leaving) location.replace(NEUTRAL_URL);
  });
}
