// Audio worklets of the browser phone: the microphone in the phone band, and the player.
// They run on the audio thread; the page only moves their messages to and from the socket.

// Microphone -> 8 kHz (or 16 kHz for "wideband") Int16 frames of 20 ms.
// A windowed-sinc low-pass at the target's Nyquist, then fractional resampling: the caller
// side of a phone line, as a Twilio caller would be heard.
class PhoneMic extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = options.processorOptions.targetRate;
    this.step = sampleRate / this.target;
    this.frame = Math.round(this.target * 0.02);
    const cutoff = (0.45 * this.target) / sampleRate;
    const taps = 63;
    this.kernel = new Float32Array(taps);
    let sum = 0;
    for (let i = 0; i < taps; i++) {
      const n = i - (taps - 1) / 2;
      const sinc = n === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * n) / (Math.PI * n);
      const window = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
      this.kernel[i] = sinc * window;
      sum += this.kernel[i];
    }
    for (let i = 0; i < taps; i++) this.kernel[i] /= sum;
    this.history = new Float32Array(taps);
    this.filtered = [];
    this.position = 0;
    this.out = new Int16Array(this.frame);
    this.filled = 0;
    this.peak = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    const taps = this.kernel.length;
    for (let i = 0; i < input.length; i++) {
      this.history.copyWithin(0, 1);
      this.history[taps - 1] = input[i];
      let acc = 0;
      for (let k = 0; k < taps; k++) acc += this.history[k] * this.kernel[k];
      this.filtered.push(acc);
    }
    while (this.position + 1 < this.filtered.length) {
      const index = Math.floor(this.position);
      const frac = this.position - index;
      const value = this.filtered[index] * (1 - frac) + this.filtered[index + 1] * frac;
      this.peak = Math.max(this.peak, Math.abs(value));
      this.out[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(value * 32767)));
      if (this.filled === this.frame) {
        this.port.postMessage({ pcm: this.out.buffer.slice(0), peak: this.peak });
        this.filled = 0;
        this.peak = 0;
      }
      this.position += this.step;
    }
    const used = Math.floor(this.position);
    this.filtered = this.filtered.slice(used);
    this.position -= used;
    return true;
  }
}

// Player: Float32 chunks (8 kHz from the phone path, 24 kHz straight from Gemini) queued in
// order, resampled to the context's rate, and marks
// reported the moment the audio before them has been played (as Twilio echoes them). A
// `clear` empties the queue at once and reports the marks still pending, as Twilio does.
class PhonePlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.current = null;
    this.offset = 0;
    this.phase = 0;
    this.played = 0;
    this.cleared = 0;
    this.peak = 0;
    this.port.onmessage = (event) => {
      const message = event.data;
      if (message.clear) {
        const marks = this.queue.filter((item) => item.mark).map((item) => item.mark);
        if (this.current && this.current.mark) marks.unshift(this.current.mark);
        this.queue = [];
        this.current = null;
        this.cleared += 1;
        for (const mark of marks) this.port.postMessage({ mark, cleared: true });
      } else {
        this.queue.push(message);
      }
    };
    this.reported = 0;
  }

  next() {
    while (!this.current || (this.current.samples && this.offset >= this.current.samples.length) || this.current.mark) {
      if (this.current && this.current.mark) {
        this.port.postMessage({ mark: this.current.mark });
      }
      this.current = this.queue.shift() || null;
      this.offset = 0;
      if (!this.current) return null;
    }
    return this.current.samples;
  }

  process(_, outputs) {
    const output = outputs[0][0];
    for (let i = 0; i < output.length; i++) {
      const samples = this.next();
      if (!samples) {
        output[i] = 0;
        continue;
      }
      const a = samples[this.offset];
      const b = this.offset + 1 < samples.length ? samples[this.offset + 1] : a;
      const value = a + (b - a) * this.phase;
      output[i] = value;
      this.peak = Math.max(this.peak, Math.abs(value));
      this.played += 1;
      this.phase += (this.current.rate || 8000) / sampleRate;
      while (this.phase >= 1) {
        this.phase -= 1;
        this.offset += 1;
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(output);
    if (currentFrame - this.reported > sampleRate / 10) {
      this.reported = currentFrame;
      this.port.postMessage({ stats: { played: this.played, peak: this.peak, cleared: this.cleared } });
      this.peak = 0;
    }
    return true;
  }
}

registerProcessor("phone-mic", PhoneMic);
registerProcessor("phone-player", PhonePlayer);
