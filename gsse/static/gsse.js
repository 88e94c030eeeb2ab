// gsse.js: the browser side of gsse. One ES module, no dependencies, no build.
// Guide: docs/browser.md. Deliberate choices:
// - The connection is fetch() plus a spec-exact text/event-stream parser, not
//   EventSource: so keep-alive comments count as liveness (onstale), the
//   server's X-Gsse-Ping header is readable, and a tab taking over a shared
//   stream can send the Last-Event-ID that another tab saw.
// - shared: one tab of the origin holds the connection (a Web Lock named after
//   the URL); it relays every event over a BroadcastChannel and beats every
//   BEAT ms. A closed holder releases the lock; a frozen one keeps it, so a tab
//   that hears nothing for SUSPECT ms, and no answer to a probe, steals it.
//   Event ids are de-duplicated, so a takeover neither loses nor repeats.
const CONNECTING = 0, OPEN = 1, CLOSED = 2;
const BEAT = 500, SUSPECT = 1000, PROBE = 400, REMEMBER = 1000;
const HANDLERS = ["open", "message", "error", "reset", "stale", "join", "leave", "end"];
const JSON_EVENTS = ["reset", "join", "leave", "end"];

/** Parses text/event-stream bytes as the HTML standard does. */
export class Parser {
  constructor(onEvent, lastId = "") {
    this.onEvent = onEvent;
    this.onComment = () => {};
    this.decoder = new TextDecoder(); // UTF-8, U+FFFD for bad bytes, drops one BOM
    this.buf = ""; this.cr = false;
    this.data = ""; this.type = ""; this.fresh = false;
    this.lastId = lastId; this.retry = null;
  }
  feed(bytes) { this.text(this.decoder.decode(bytes, {stream: true})); }
  end() { this.text(this.decoder.decode()); this.buf = ""; }
  text(t) {
    if (this.cr && t) { if (t[0] === "\n") t = t.slice(1); this.cr = false; }
    let i = this.buf.length, start = 0;
    const buf = this.buf + t;
    for (; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 13 && c !== 10) continue;
      this.line(buf.slice(start, i));
      if (c === 13) {
        if (i + 1 === buf.length) this.cr = true;
        else if (buf.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.buf = buf.slice(start);
  }
  line(line) {
    if (line === "") return this.dispatch();
    if (line[0] === ":") return this.onComment(line.slice(1));
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "data") this.data += value + "\n";
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) { this.lastId = value; this.fresh = true; }
    else if (field === "retry" && /^[0-9]+$/.test(value)) this.retry = +value;
  }
  dispatch() {
    const fresh = this.fresh, data = this.data, type = this.type || "message";
    this.fresh = false; this.data = ""; this.type = "";
    if (data === "") return;
    this.onEvent({type, data: data.slice(0, -1), id: this.lastId, fresh, retry: this.retry});
  }
}

/** One fetch() stream that reconnects as EventSource does; `on` gets its news. */
class Connection {
  constructor(url, options, lastId, on) {
    Object.assign(this, {url, options, lastId, on, retry: 3000, closed: false});
    this.run();
  }
  async run() {
    let status = 0;
    while (!this.closed) {
      const abort = this.abort = new AbortController();
      let parser = null;
      try {
        const headers = {Accept: "text/event-stream"};
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        const res = await fetch(this.url, {
          headers, cache: "no-store", signal: abort.signal,
          credentials: this.options.withCredentials ? "include" : "same-origin",
        });
        const type = (res.headers.get("Content-Type") || "").split(";")[0].trim();
        if (res.status !== 200 || type.toLowerCase() !== "text/event-stream") {
          status = res.status || -1;
          break;
        }
        const ping = parseFloat(res.headers.get("X-Gsse-Ping") ?? this.options.ping ?? 0);
        this.staleAfter = ping > 0 ? 2000 * ping : 0;
        parser = new Parser((m) => {
          if (!this.closed) { this.lastId = m.id; this.on.event(m); }
        }, this.lastId);
        this.on.open();
        const reader = res.body.getReader();
        for (;;) {
          this.touch();
          const {done, value} = await reader.read();
          if (done || this.closed) break;
          parser.feed(value);
        }
      } catch (e) { /* network failure or our abort: reconnect below */ }
      clearTimeout(this.timer);
      if (parser) this.lastId = parser.lastId;
      if (parser?.retry != null) this.retry = parser.retry;
      if (this.closed) return;
      this.on.error();
      await new Promise((r) => setTimeout(r, this.retry));
    }
    if (!this.closed) { this.closed = true; this.on.fail(status); }
  }
  touch() {
    clearTimeout(this.timer);
    if (!this.staleAfter) return;
    this.timer = setTimeout(() => { this.on.stale(); this.abort.abort(); }, this.staleAfter);
  }
  close() { this.closed = true; clearTimeout(this.timer); this.abort?.abort(); }
}

/** What connect() returns: EventSource's interface plus gsse's events. */
export class Source extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = new URL(url, location.href).href;
    this.withCredentials = !!options.withCredentials;
    this.readyState = CONNECTING;
    this.lastEventId = "";
    this.leader = false; // true in the tab that holds the server connection
    for (const name of HANDLERS) this["on" + name] = null;
    this.seen = new Map();
    this.shared = !!(options.shared && self.BroadcastChannel && navigator.locks);
    const on = {
      event: (m) => this.deliver(m),
      open: () => this.state(OPEN, "open"),
      error: () => this.state(CONNECTING, "error"),
      stale: () => this.emit(new Event("stale")),
      fail: (status) => this.end(status),
    };
    if (this.shared) this.share(options, on);
    else this.conn = new Connection(this.url, options, "", on);
  }
  get CONNECTING() { return CONNECTING; }
  get OPEN() { return OPEN; }
  get CLOSED() { return CLOSED; }

  emit(event) {
    this.dispatchEvent(event);
    const handler = HANDLERS.includes(event.type) && this["on" + event.type];
    if (typeof handler === "function") handler.call(this, event);
  }
  state(readyState, type) {
    if (this.readyState === CLOSED || this.readyState === readyState) return;
    this.readyState = readyState;
    this.emit(new Event(type));
  }
  deliver(m) {
    if (this.readyState === CLOSED) return;
    if (m.fresh && this.shared) { // a takeover may send what we already have
      if (this.seen.has(m.id)) return;
      this.seen.set(m.id, 1);
      if (this.seen.size > REMEMBER) this.seen.delete(this.seen.keys().next().value);
    }
    if (this.readyState !== OPEN) this.state(OPEN, "open");
    this.lastEventId = m.id;
    const event = new MessageEvent(m.type, {
      data: m.data, lastEventId: m.id, origin: new URL(this.url).origin,
    });
    if (JSON_EVENTS.includes(m.type)) {
      try { event.payload = JSON.parse(m.data); } catch (e) { event.payload = null; }
      if (m.type === "reset") event.channel = event.payload?.channel;
    }
    this.emit(event);
  }
  end(status) { // the server refused: 204, an error status or not an event stream
    if (this.readyState === CLOSED) return;
    this.status = status;
    this.close();
    this.emit(new Event("error"));
  }
  close() {
    this.readyState = CLOSED;
    this.conn?.close();
    this.stop?.();
  }

  share(options, local) {
    const key = "gsse " + this.url, me = Math.random().toString(36).slice(2);
    const channel = new BroadcastChannel(key);
    let epoch = 0, heard = Date.now(), probing = false, waiting = null, release = null;
    let beat = 0, resumeId = "";
    const post = (t, more) =>
      channel.postMessage({t, from: me, epoch, lastId: this.lastEventId, ...more});
    const relay = (t, handle) => (m) => { post(t, {m}); handle(m); };
    const on = {
      event: relay("event", local.event), open: relay("open", local.open),
      error: relay("error", local.error), stale: relay("stale", local.stale),
      fail: relay("fail", local.fail),
    };
    const lead = (done) => {
      epoch++; release = done; this.leader = true;
      this.conn = new Connection(this.url, options, this.lastEventId || resumeId, on);
      beat = setInterval(() => post("beat", {state: this.readyState}), BEAT);
      post("beat", {state: this.readyState});
    };
    const resign = () => {
      this.conn?.close(); this.conn = null; this.leader = false;
      clearInterval(beat); release?.(); release = null; heard = Date.now();
    };
    const campaign = (steal) => {
      const abort = waiting = new AbortController();
      const after = () => { // released, stolen from us, or given up for a steal
        if (waiting !== abort) return;
        resign();
        if (this.readyState !== CLOSED) campaign(false);
      };
      navigator.locks.request(key, steal ? {steal: true} : {signal: abort.signal}, () =>
        this.readyState === CLOSED ? null : new Promise(lead)).then(after, after);
    };
    channel.onmessage = ({data: d}) => {
      if (d.t === "probe") return this.leader && post("beat", {state: this.readyState});
      if (d.epoch < epoch || d.from === me) return; // a deposed holder, still talking
      if (this.leader) { // two stole at once? The lock decides; the smaller id yields
        if (d.epoch === epoch && d.from < me) return;
        resign();
      }
      epoch = d.epoch; heard = Date.now(); resumeId = d.lastId;
      if (d.t === "event") local.event(d.m);
      else if (d.t !== "beat") local[d.t]?.(d.m);
      else if (d.state === OPEN) local.open();
    };
    const watch = setInterval(() => {
      if (this.leader || probing || Date.now() - heard < SUSPECT) return;
      probing = true; post("probe");
      setTimeout(() => {
        probing = false;
        if (!this.leader && Date.now() - heard >= SUSPECT && this.readyState !== CLOSED) {
          waiting?.abort(); campaign(true); // the holder is frozen: take its lock
        }
      }, PROBE + Math.random() * 200);
    }, BEAT / 2);
    this.stop = () => { clearInterval(watch); waiting = null; resign(); channel.close(); };
    campaign(false);
  }
}

/** Like `new EventSource(url)`; `{shared: true}` shares it between tabs. */
export function connect(url, options = {}) { return new Source(url, options); }

/** Follow a resumable run: resolves with the `end` event's data ({status, ...}). */
export function follow(url, options = {}) {
  return new Promise((resolve, reject) => {
    const source = connect(url, options);
    source.onmessage = options.onmessage || null;
    for (const [type, fn] of Object.entries(options.on || {})) {
      source.addEventListener(type, fn);
    }
    source.addEventListener("end", (e) => {
      source.close();
      resolve(e.payload || {status: null});
    });
    source.addEventListener("error", () => {
      if (source.readyState !== CLOSED) return;
      if (source.status === 204) resolve({status: null});
      else reject(new Error(`gsse: ${source.url} answered ${source.status}`));
    });
  });
}
