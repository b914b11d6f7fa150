// The presenter's own devices: camera and microphone preview with device choice, a level meter,
// and screen share. Nothing here leaves the browser; media.js publishes what is chosen.

export async function openCamera({ videoId, audioId } = {}) {
  return navigator.mediaDevices.getUserMedia({
    video: videoId ? { deviceId: { exact: videoId } } : { width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: audioId ? { deviceId: { exact: audioId } } : { echoCancellation: true, noiseSuppression: true },
  });
}

// Labels are only filled in after permission is granted, so call this after openCamera().
export async function listDevices() {
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === "videoinput"),
    microphones: all.filter((d) => d.kind === "audioinput"),
  };
}

export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

// Calls onLevel(0..1) about 15 times a second with the microphone's loudness. Returns stop().
export function levelMeter(stream, onLevel) {
  if (!stream.getAudioTracks().length) return () => {};
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame = 0;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    // Speech sits around 0.02-0.2 RMS; a square root spreads that over the meter.
    if (frame++ % 4 === 0) onLevel(Math.min(1, Math.sqrt(rms * 5)));
    requestAnimationFrame(tick);
  };
  context.resume().catch(() => {});
  tick();
  return () => {
    stopped = true;
    source.disconnect();
    context.close().catch(() => {});
  };
}

export function shareScreen() {
  return navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
}
