// Times as the viewer reads them: in their own time zone, with the event's zone noted.

export const viewerZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

const formats = new Map();
function format(options, zone) {
  const key = JSON.stringify([options, zone]);
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone }));
  return formats.get(key);
}

export const clock = (iso, zone = viewerZone()) =>
  format({ hour: "2-digit", minute: "2-digit" }, zone).format(new Date(iso));

export const day = (iso, zone = viewerZone()) =>
  format({ weekday: "long", day: "numeric", month: "long", year: "numeric" }, zone).format(new Date(iso));

// Event dates are calendar dates (YYYY-MM-DD); shown as such, whatever the zone.
export function dateOnly(value) {
  const [y, m, d] = value.split("-").map(Number);
  return format({ weekday: "long", day: "numeric", month: "long", year: "numeric" }, "UTC")
    .format(new Date(Date.UTC(y, m - 1, d)));
}

export function zoneName(zone, iso = new Date().toISOString()) {
  const parts = format({ timeZoneName: "long" }, zone).formatToParts(new Date(iso));
  const name = parts.find((p) => p.type === "timeZoneName");
  return name ? name.value : zone;
}

// "09:30–10:15" in the viewer's zone.
export const span = (startIso, endIso, zone = viewerZone()) => `${clock(startIso, zone)}–${clock(endIso, zone)}`;

// Minutes as "1 h 5 min" / "12 min".
export function minutes(total) {
  const m = Math.round(Math.abs(total));
  if (m < 60) return `${m} min`;
  if (m >= 48 * 60) return `${Math.round(m / 1440)} days`;
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

// The now and next sessions of an agenda (sorted by start).
export function nowAndNext(sessions, at = Date.now()) {
  const sorted = [...sessions].sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  const now = sorted.find((s) => Date.parse(s.starts_at) <= at && at < Date.parse(s.ends_at)) || null;
  const next = sorted.find((s) => Date.parse(s.starts_at) > at) || null;
  return { now, next };
}

// The UTC offset (ms) of `zone` at the instant `utcMs`.
function offsetAt(zone, utcMs) {
  const parts = Object.fromEntries(
    format({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }, zone)
      .formatToParts(new Date(utcMs)).map((p) => [p.type, p.value]),
  );
  const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return asUtc - Math.floor(utcMs / 1000) * 1000;
}

// A wall-clock "YYYY-MM-DDTHH:MM" in `zone` (from <input type=datetime-local>) to an ISO instant.
export function wallToIso(wall, zone) {
  const [date, time] = wall.split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const guess = Date.UTC(y, m - 1, d, hh, mm);
  let utc = guess - offsetAt(zone, guess);
  utc = guess - offsetAt(zone, utc);
  return new Date(utc).toISOString();
}

// An ISO instant to the wall clock "YYYY-MM-DDTHH:MM" in `zone`, for datetime-local inputs.
export function isoToWall(iso, zone) {
  const parts = Object.fromEntries(
    format({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }, zone)
      .formatToParts(new Date(iso)).map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}
