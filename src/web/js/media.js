// The local camera and microphone: asked for once in the lobby, with fallbacks (audio only,
// video only, nothing) and a message people can act on when the browser refuses.

import {log} from './ui.js';

const VIDEO = {width: {ideal: 640}, height: {ideal: 360}, frameRate: {ideal: 24, max: 30}};

/** What a refusal of getUserMedia means, for people. */
export function mediaErrorText(err) {
  const name = err && err.name;
  if (!navigator.mediaDevices)
    return 'This page cannot use a camera here: open it over HTTPS (or on localhost).';
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError')
    return 'Camera and microphone are blocked. Allow them in your browser\'s site settings and reload to be seen and heard; you can still join to watch and chat.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError')
    return 'No camera or microphone was found. You can still join to watch and chat.';
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError')
    return 'Your camera or microphone is in use by another application, or failed to start.';
  return `The camera could not be started (${name || 'unknown error'}).`;
}

/**
 * Opens the camera and microphone. Resolves {stream, error}: stream holds what could be
 * opened (possibly no track at all), error the first refusal (null when all went well).
 */
export async function openMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
    return {stream: new MediaStream(), error: {name: 'NotSupportedError'}};
  let first = null;
  for (const c of [{audio: true, video: VIDEO}, {audio: true, video: false}, {audio: false, video: VIDEO}]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(c);
      log('media: opened', stream.getTracks().map((t) => t.kind).join('+'));
      return {stream, error: first};
    } catch (e) {
      log('media: refused', JSON.stringify(c), e && e.name);
      if (!first) first = e;
      // a refusal by the person (or a policy) covers every device: do not ask again
      if (e && (e.name === 'NotAllowedError' || e.name === 'SecurityError')) break;
    }
  }
  return {stream: new MediaStream(), error: first};
}

/** Stops every track of a stream. */
export function stopMedia(stream) {
  if (stream) for (const t of stream.getTracks()) t.stop();
}
