// The browser phone: the page speaks Twilio Media Streams to the server, so the call runs
// through the same call core as a phone call. See telephony/web/browser_phone.py.
"use strict";

const $ = (id) => document.getElementById(id);
const base = location.pathname.replace(/\/phone\/?$/, "");
const stats = { state: "idle", callSid: null, framesSent: 0, played: 0, peak: 0, cleared: 0, marks: 0, pageDelayMs: null };
window.telephonyStats = stats; // read by the browser tests

// --- G.711 mu-law (the codec of every Twilio stream) ----------------------------------------
function muLawEncode(sample) {
  const BIAS = 0x84, CLIP = 32635;
  let sign = (sample >> 8) & 0x80;
  if (sign) sample = -sample;
  if (sample > CLIP) sample = CLIP;
  sample += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (sample & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (sample >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}
function muLawDecode(byte) {
  byte = ~byte & 0xff;
  const sign = byte & 0x80, exponent = (byte >> 4) & 0x07, mantissa = byte & 0x0f;
  let sample = ((mantissa << 3) + 0x84) << exponent;
  sample -= 0x84;
  return sign ? -sample : sample;
}
const toBase64 = (bytes) => { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); };
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

let socket = null, context = null, mic = null, player = null, stream = null, sequence = 0, session = null, poller = null;

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    sequence += 1;
    socket.send(JSON.stringify({ sequenceNumber: String(sequence), ...message }));
  }
}

function setState(state, note) {
  stats.state = state;
  $("state").textContent = note || state;
  $("call").disabled = state !== "idle" && state !== "ended";
  $("hangup").disabled = !(state === "connecting" || state === "in call");
}

async function audioGraph(targetRate) {
  context = new AudioContext({ latencyHint: "interactive" });
  await context.audioWorklet.addModule(`${base}/phone/static/phone-worklets.js`);
  stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  const source = context.createMediaStreamSource(stream);
  mic = new AudioWorkletNode(context, "phone-mic", { processorOptions: { targetRate } });
  player = new AudioWorkletNode(context, "phone-player", { outputChannelCount: [1] });
  source.connect(mic);
  player.connect(context.destination);
  stats.pageDelayMs = Math.round(20 + 1000 * ((context.baseLatency || 0) + (context.outputLatency || 0)));
  player.port.onmessage = (event) => {
    const message = event.data;
    if (message.mark) {
      stats.marks += 1;
      send({ event: "mark", streamSid: session.streamSid, mark: { name: message.mark } });
    } else if (message.stats) {
      stats.played = message.stats.played;
      stats.peak = Math.max(stats.peak, message.stats.peak);
      stats.cleared = message.stats.cleared;
      $("heard").value = Math.min(1, message.stats.peak * 2);
    }
  };
}

// "Direct to Gemini": the browser talks to Gemini Live itself with the official SDK and a
// single-use token the server minted (locked to the agent's model and configuration); the
// API key never leaves the server. No phone path: 16 kHz up, 24 kHz down.
let direct = null;
function say(speaker, text) {
  const list = $("transcript");
  let last = list.lastElementChild;
  if (!last || last.dataset.speaker !== speaker) {
    last = Object.assign(document.createElement("li"), { className: speaker });
    last.dataset.speaker = speaker;
    last.dataset.text = "";
    list.append(last);
  }
  last.dataset.text += text;
  last.textContent = `${speaker}: ${last.dataset.text}`;
}

async function startDirect() {
  stats.mode = "direct";
  const response = await fetch(`${base}/api/gemini-token?agent=${encodeURIComponent($("agent").value)}`, { method: "POST" });
  if (!response.ok) { setState("ended", `no token: HTTP ${response.status}`); return; }
  const grant = await response.json();
  const { GoogleGenAI, Modality } = await import(`${base}/phone/static/genai.js`);
  await audioGraph(16000);
  const ai = new GoogleGenAI({ apiKey: grant.token, httpOptions: { apiVersion: "v1alpha", ...(grant.baseUrl ? { baseUrl: grant.baseUrl } : {}) } });
  direct = await ai.live.connect({
    model: grant.model,
    config: { responseModalities: [Modality.AUDIO] },
    callbacks: {
      onmessage: (message) => {
        const content = message.serverContent;
        if (!content) return;
        if (content.interrupted) { player.port.postMessage({ clear: true }); say("agent", " (interrupted)"); }
        for (const part of (content.modelTurn && content.modelTurn.parts) || []) {
          if (part.inlineData && part.inlineData.data) {
            const bytes = fromBase64(part.inlineData.data);
            const pcm = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
            const samples = new Float32Array(pcm.length);
            for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
            player.port.postMessage({ samples, rate: 24000 });
          }
        }
        if (content.inputTranscription && content.inputTranscription.text) say("caller", content.inputTranscription.text);
        if (content.outputTranscription && content.outputTranscription.text) say("agent", content.outputTranscription.text);
      },
      onclose: () => endCall("ended"),
      onerror: (error) => endCall(`failed: ${error.message || error}`),
    },
  });
  setState("in call");
  mic.port.onmessage = (event) => {
    $("level").value = Math.min(1, event.data.peak * 2);
    stats.framesSent += 1;
    direct.sendRealtimeInput({ audio: { data: toBase64(new Uint8Array(event.data.pcm)), mimeType: "audio/pcm;rate=16000" } });
  };
}

async function startCall() {
  setState("connecting", "connecting…");
  $("transcript").replaceChildren();
  if ($("direct").checked) return startDirect();
  stats.mode = "phone";
  const wideband = $("wideband").checked;
  const response = await fetch(`${base}/phone/session`, { method: "POST" });
  if (!response.ok) { setState("ended", `refused: HTTP ${response.status}`); return; }
  session = await response.json();
  stats.callSid = session.callSid;
  // What the page itself adds to the caller's wait: one 20 ms frame gathered here, plus the
  // audio stack's own input and output latency as the browser reports it (see audioGraph).
  await audioGraph(wideband ? 16000 : 8000);

  socket = new WebSocket(session.socket, ["telephony-phone", `token.${session.token}`]);
  socket.onopen = () => {
    send({ event: "connected", protocol: "Call", version: "1.0.0" });
    const format = wideband ? { encoding: "audio/x-l16", sampleRate: 16000, channels: 1 } : { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 };
    send({
      event: "start",
      streamSid: session.streamSid,
      start: {
        accountSid: "AC" + "0".repeat(32), callSid: session.callSid, streamSid: session.streamSid, tracks: ["inbound"],
        customParameters: { agent: $("agent").value, caller: "browser", called: "phone", direction: "browser" },
        mediaFormat: format,
      },
    });
    setState("in call");
    poller = setInterval(refreshTranscript, 500);
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.event === "media") {
      const bytes = fromBase64(message.media.payload);
      const samples = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) samples[i] = muLawDecode(bytes[i]) / 32768;
      player.port.postMessage({ samples });
    } else if (message.event === "mark") {
      player.port.postMessage({ mark: message.mark.name });
    } else if (message.event === "clear") {
      player.port.postMessage({ clear: true });
    }
  };
  socket.onclose = (event) => endCall(event.code === 1000 ? "ended" : `ended (${event.code})`);
  let chunk = 0;
  mic.port.onmessage = (event) => {
    const pcm = new Int16Array(event.data.pcm);
    $("level").value = Math.min(1, event.data.peak * 2);
    let payload;
    if (wideband) {
      payload = new Uint8Array(pcm.buffer);
    } else {
      payload = new Uint8Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) payload[i] = muLawEncode(pcm[i]);
    }
    chunk += 1;
    stats.framesSent += 1;
    send({ event: "media", streamSid: session.streamSid, media: { track: "inbound", chunk: String(chunk), timestamp: String(chunk * 20), payload: toBase64(payload) } });
  };
}

function endCall(note) {
  if (direct) { const closing = direct; direct = null; try { closing.close(); } catch (error) { /* already closed */ } }
  if (socket && socket.readyState === WebSocket.OPEN) {
    send({ event: "stop", streamSid: session.streamSid, stop: { accountSid: "AC" + "0".repeat(32), callSid: session.callSid } });
    socket.close(1000);
  }
  socket = null;
  if (stream) stream.getTracks().forEach((track) => track.stop());
  if (context) context.close();
  stream = context = null;
  if (poller) clearInterval(poller);
  poller = null;
  setTimeout(refreshTranscript, 300);
  setState("ended", note || "ended");
}

async function refreshTranscript() {
  if (!stats.callSid || stats.mode === "direct") return;
  const response = await fetch(`${base}/api/calls/${stats.callSid}`);
  if (!response.ok) return;
  const call = await response.json();
  const list = $("transcript");
  list.replaceChildren(
    ...(call.transcript || []).map((line) => {
      const item = document.createElement("li");
      item.className = line.speaker + (line.interrupted ? " interrupted" : "");
      item.textContent = `${line.speaker}: ${line.text}${line.interrupted ? " (interrupted)" : ""}`;
      return item;
    }),
  );
}

async function loadAgents() {
  const response = await fetch(`${base}/phone/session`, { method: "POST" });
  if (!response.ok) { setState("idle", `cannot start a call here: HTTP ${response.status}`); return; }
  const names = (await response.json()).agents || [];
  $("agent").replaceChildren(...names.map((name) => Object.assign(document.createElement("option"), { value: name, textContent: name })));
}

$("call").addEventListener("click", () => startCall().catch((error) => { console.error(error); endCall(`failed: ${error.message}`); }));
$("hangup").addEventListener("click", () => endCall("you hung up"));
setState("idle", "ready");
loadAgents();
