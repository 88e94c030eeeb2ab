"""A chat "assistant" whose answers survive a reload, a second tab and Stop.

Install:   pip install gsse
Run it:    gsse run examples.assistant:app      (or: python examples/assistant.py)
Then open: http://127.0.0.1:8000/   ask something, reload mid-answer, open
           the page's URL in a second tab, press Stop
Port:      --port 9000, or GSSE_PORT=9000 for either command

Each question starts a *run* (``gsse.Runs``): the answer is produced
detached from any request and kept in the broker, so the page, which puts
the run's id in its URL, can reload and follow it again from the start, or
a second tab can follow it too; Stop cancels it for everyone.

No model is downloaded: ``fake_model`` is a deterministic stand-in that
sleeps between tokens, as a model would. The "SDK" variant calls a
blocking function (``blocking_sdk``, which sleeps without yielding, like a
vendor SDK that is not gevent-aware) in a thread of the server's pool with
``runs.start(..., blocking=True)``. With ``gsse run --broker
redis://localhost:6379/0 --workers 4`` any worker can serve any tab.
"""

import hashlib
import os
import time
from collections.abc import Iterator

from gevent.monkey import get_original

import gsse
from gsse import App
from gsse import Event
from gsse.runs import RunWriter

app = App()
runs = gsse.Runs(gsse.Broker.from_url(), ttl=3600)

#: Seconds between two tokens (a model's pace); GSSE_ASSISTANT_DELAY to change.
DELAY = float(os.environ.get("GSSE_ASSISTANT_DELAY", "0.08"))

WORDS = (
    "Server-sent events keep one response open and write each token as it"
    " comes. A run keeps the tokens in the broker, so a reload, a second tab or"
    " a dropped connection resumes from the last token it saw, and Stop ends"
    " it for every tab at once."
).split()


def answer_tokens(question: str) -> Iterator[str]:
    """The deterministic answer to ``question``: the same words every time."""
    seed = int(hashlib.sha256(question.encode()).hexdigest(), 16)
    yield f"({len(question)} characters, #{seed % 1000}) "
    for word in WORDS:
        yield word + " "


def check(writer: RunWriter) -> bool:
    """Whether to go on: ``False`` once cancelled (Stop); raises at shutdown.

    Raising ``ClientDisconnected`` while the server shuts down ends the run
    as ``interrupted`` at once (Ctrl-C does not wait for answers to end).
    """
    if writer.shutting_down:
        raise gsse.ClientDisconnected("the server is shutting down")
    return not writer.cancelled


def fake_model(writer: RunWriter, question: str) -> None:
    """A greenlet producer: one token event per ``DELAY`` seconds."""
    for token in answer_tokens(question):
        if not check(writer):
            return
        writer.send_event(token, event="token")
        time.sleep(DELAY)  # patched by gevent: other streams go on


_real_sleep = get_original("time", "sleep")


def blocking_sdk(question: str) -> Iterator[str]:
    """A stand-in vendor SDK: blocks its thread for real between tokens."""
    for token in answer_tokens(question):
        _real_sleep(DELAY)
        yield token


def sdk_model(writer: RunWriter, question: str) -> None:
    """A pool-thread producer around a blocking SDK's token iterator."""
    for token in blocking_sdk(question):
        if not check(writer):
            return
        writer.send_event(token, event="token")


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gsse assistant</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 42rem; }
  #answer { white-space: pre-wrap; min-height: 4rem; border: 1px solid #ccc;
            padding: .75rem; border-radius: .4rem; }
  #status { color: #555; }
</style>
<h1>Assistant</h1>
<form id="ask">
  <input id="question" name="question" size="40" value="What are resumable runs?">
  <label><input type="checkbox" id="sdk"> blocking SDK</label>
  <button>Ask</button>
</form>
<p id="answer"></p>
<p><button id="stop" disabled>Stop</button> <span id="status">idle</span></p>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  const answer = document.getElementById("answer");
  const status = document.getElementById("status");
  const stop = document.getElementById("stop");
  window.runStatus = null;
  window.tokens = 0;

  async function follow(id) {
    answer.textContent = ""; window.tokens = 0; window.runStatus = "running";
    status.textContent = "answering…"; stop.disabled = false;
    stop.onclick = () => fetch(`/runs/${id}/cancel`, {method: "POST"});
    let end;
    try {
      end = await gsse.follow(`/runs/${id}`, {on: {token: (e) => {
        answer.textContent += e.data; window.tokens += 1;
      }}});
    } catch (err) {
      end = {status: "gone"};  // unknown or expired: 404
    }
    window.runStatus = end.status; stop.disabled = true;
    status.textContent = end.status;
  }

  document.getElementById("ask").onsubmit = async (e) => {
    e.preventDefault();
    const body = new URLSearchParams({
      question: document.getElementById("question").value,
      sdk: document.getElementById("sdk").checked ? "1" : "",
    });
    const {id} = await (await fetch("/ask", {method: "POST", body})).json();
    history.replaceState(null, "", `/?run=${id}`);  // a reload follows it again
    follow(id);
  };
  const id = new URLSearchParams(location.search).get("run");
  if (id) follow(id);
</script>
"""


@app.route("/")
def index(event: Event) -> str:
    return PAGE


@app.route("/ask", methods=["POST"])
def ask(event: Event) -> dict[str, str] | tuple[str, int]:
    question = event.request.form.get("question", "").strip()
    if not 1 <= len(question) <= 500:
        return "question must be 1 to 500 characters", 400
    if event.request.form.get("sdk"):
        run = runs.start(sdk_model, question, blocking=True)
    else:
        run = runs.start(fake_model, question)
    return {"id": run.id}


@app.route("/runs/<run_id>")
def follow(event: Event) -> None:
    event.follow(runs, event.path_params["run_id"])


@app.route("/runs/<run_id>/cancel", methods=["POST"])
def cancel(event: Event) -> dict[str, bool]:
    return {"cancelled": runs.cancel(event.path_params["run_id"])}


if __name__ == "__main__":
    gsse.run(app, port=int(os.environ.get("GSSE_PORT", "8000")))
