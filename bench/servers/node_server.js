// The benchmark contract on Node's bare `http` module (no framework).
// Run: node node_server.js PORT. Routes: see gsse_app.py.
"use strict";
const http = require("http");
const { performance } = require("perf_hooks");

const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const SSE = { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" };
const subscribers = new Set();

function publisher(rate, seconds, single) {
  const count = Math.floor(rate * seconds);
  // single: one publish per wake-up, never a burst to catch up.
  const burst = single ? 1 : count;
  const start = performance.timeOrigin + performance.now();
  const stopBy = start + (seconds + 10) * 1000;
  let i = 0;
  function step() {
    const now = performance.timeOrigin + performance.now();
    const wokeAt = i;
    while (i < count && i - wokeAt < burst) {
      const due = start + (i * 1000) / rate;
      if (due > now) break;
      const payload = `id: ${i + 1}\ndata: ${Math.round(due * 1000)}\n\n`;
      for (const res of subscribers) res.write(payload);
      i++;
    }
    if (i < count && now < stopBy) {
      const wait = start + (i * 1000) / rate - (performance.timeOrigin + performance.now());
      // single: a wake-up as soon as one is due (setTimeout(0) waits 1 ms).
      if (single && wait <= 0) setImmediate(step);
      else setTimeout(step, Math.max(0, wait));
    }
  }
  step();
}

http
  .createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    switch (url.pathname) {
      case "/ping":
        res.writeHead(200, { "Content-Type": "text/plain" });
        res.end("pong");
        return;
      case "/idle": {
        res.writeHead(200, SSE);
        res.write(`data: ${nowUs()}\n\n`);
        const timer = setInterval(() => res.write(": ping\n\n"), 15000);
        res.on("close", () => clearInterval(timer));
        return;
      }
      case "/sub":
        res.writeHead(200, SSE);
        res.write(": ok\n\n");
        subscribers.add(res);
        res.on("close", () => subscribers.delete(res));
        return;
      case "/publish":
        publisher(
          Number(url.searchParams.get("rate")),
          Number(url.searchParams.get("seconds")),
          url.searchParams.get("single") === "1",
        );
        res.end("ok");
        return;
      case "/tick": {
        res.writeHead(200, SSE);
        let n = 0;
        const send = () => res.write(`data: ${nowUs()}\n\n`);
        send();
        const timer = setInterval(() => {
          if (++n >= 36000) { clearInterval(timer); res.end(); } else send();
        }, 100);
        res.on("close", () => clearInterval(timer));
        return;
      }
      default:
        res.writeHead(404);
        res.end();
    }
  })
  .listen(Number(process.argv[2]), "127.0.0.1", 4096);
