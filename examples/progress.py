"""Progress of a long blocking job, in a real thread, shown as a progress bar.

Install:   pip install gsse
Run it:    gsse run examples.progress:app      (or: python examples/progress.py)
Then open: http://127.0.0.1:8000/   (or: curl -N http://127.0.0.1:8000/job)
Port:      --port 9000, or GSSE_PORT=9000 for either command

The job (key stretching with ``hashlib.pbkdf2_hmac``) is CPU work that never
yields to gevent. Run as an ordinary callback it would freeze every other
stream while it works; ``set_stream_callback(..., blocking=True)`` runs it in
a thread of the server's thread pool instead (size it with ``--threads``),
and each ``send_event`` from that thread is handed to the event loop safely.
"""

import hashlib
import os

from gsse import App
from gsse import Event
from gsse import SSEWriter

app = App()

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse progress</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 3rem; max-width: 40rem; }
  progress { width: 100%; height: 2rem; }
  #result { font-family: ui-monospace, monospace; word-break: break-all; }
</style>
<h1>A long blocking job</h1>
<progress id="bar" max="100" value="0"></progress>
<p><output id="percent">0</output>% · step <output id="step">0</output>
   of <output id="steps">?</output></p>
<p id="result">working…</p>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  window.done = false;
  const source = gsse.connect("/job?steps=20");
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    document.getElementById("bar").value = p.percent;
    document.getElementById("percent").textContent = p.percent;
    document.getElementById("step").textContent = p.step;
    document.getElementById("steps").textContent = p.steps;
  });
  source.addEventListener("done", (e) => {
    // Close, or the browser would reconnect and start the job again.
    source.close();
    window.done = true;
    document.getElementById("result").textContent = "done: " + JSON.parse(e.data).key;
  });
</script>
"""


@app.route("/")
def index(event: Event) -> str:
    return PAGE


@app.route("/job")
def job(event: Event) -> tuple[str, int] | None:
    steps = event.request.args.get("steps", 20, type=int)
    if not 1 <= steps <= 100:
        return "steps must be between 1 and 100", 400
    event.start_sse()
    event.set_stream_callback(lambda writer: run_job(writer, steps), blocking=True)
    return None


def run_job(writer: SSEWriter, steps: int) -> None:
    """Runs in a pool thread: blocking here stalls no other stream."""
    with writer:
        key = os.urandom(16)
        for step in range(1, steps + 1):
            if writer.shutting_down:  # Ctrl-C: stop between two steps
                writer.send_event({"step": step - 1}, event="stopped")
                return
            # CPU-bound work that never yields to gevent (about 0.1 s a step).
            key = hashlib.pbkdf2_hmac("sha256", key, b"gsse", 500_000)
            percent = round(100 * step / steps)
            writer.send_event(
                {"step": step, "steps": steps, "percent": percent}, event="progress"
            )
        writer.send_event({"key": key.hex()}, event="done")


if __name__ == "__main__":
    import gsse

    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
