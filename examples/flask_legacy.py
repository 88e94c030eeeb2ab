"""An existing Flask app that gains a live feed by adding one line.

Install:   pip install gsse flask
Run it:    gsse run examples.flask_legacy:app
Then open: http://127.0.0.1:8000/ in two tabs and place an order in one
Port:      --port 9000, or GSSE_PORT=9000
Gunicorn:  pip install 'gsse[workers]' flask
           gunicorn -k gevent -c python:gsse.gunicorn examples.flask_legacy:app
           (the hook ends the streams gracefully on SIGTERM)

The app is plain Flask: server-rendered pages, a form that posts and
redirects, a ``before_request`` hook. Streaming takes a view that returns
``gsse.stream(...)`` (here ``broker.stream(...)``, which is one) and the
last line, ``gsse.SSEMiddleware(flask_app)``. The same file also runs
unchanged under ``gunicorn -k gevent examples.flask_legacy:app`` or a plain
``gevent.pywsgi.WSGIServer`` (see docs/flask.md).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask
from flask import g
from flask import redirect
from flask import render_template_string
from flask import request
from flask import send_file

import gsse

flask_app = Flask(__name__)

#: memory:// by default; ``gsse run --broker redis://...`` shares it.
broker = gsse.Broker.from_url(history=100)

#: The "database" of this example.
ORDERS: list[dict[str, Any]] = []

MAX_ITEM = 60
MAX_QUANTITY = 99

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Corner shop orders</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem 3rem; max-width: 46rem; }
  nav a { margin-right: 1rem; }
  table { border-collapse: collapse; width: 100%; }
  td, th { border-bottom: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; }
  #feed { list-style: none; padding: .5rem 1rem; min-height: 4rem;
          border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa; }
  #feed li { margin: .2rem 0; } #status { color: #666; }
</style>
<nav><a href="/">Orders</a><a href="/about">About</a></nav>
<h1>Orders</h1>
<form method="post" action="/orders">
  <input name="item" placeholder="item" maxlength="{{ max_item }}" required>
  <input name="quantity" type="number" min="1" max="{{ max_quantity }}" value="1">
  <button>Place order</button>
</form>
<h2>Live feed <small id="status">connecting…</small></h2>
<ul id="feed"></ul>
<h2>All orders (as of {{ rendered }})</h2>
<table>
  <tr><th>#</th><th>item</th><th>quantity</th></tr>
  {% for order in orders %}
  <tr>
    <td>{{ order.number }}</td><td>{{ order.item }}</td><td>{{ order.quantity }}</td>
  </tr>
  {% endfor %}
</table>
<script type="module">
  import * as gsse from "/_gsse/gsse.js";
  window.received = 0;
  const feed = document.getElementById("feed");
  const source = gsse.connect("/feed", {shared: true});
  source.onopen = () => { document.getElementById("status").textContent = "live"; };
  source.onerror = () => {
    document.getElementById("status").textContent = "reconnecting…";
  };
  source.addEventListener("order", (e) => {
    const order = JSON.parse(e.data);
    const li = document.createElement("li");
    li.textContent = `#${order.number}: ${order.quantity} × ${order.item}`;
    feed.prepend(li);
    window.received += 1;
  });
</script>
"""

ABOUT = """<!doctype html>
<meta charset="utf-8">
<title>About</title>
<p>An ordinary Flask page, served by the same app as the live feed.
Rendered in {{ elapsed_ms }} ms. <a href="/">Back to the orders</a>.</p>
"""


@flask_app.before_request
def start_timer() -> None:
    g.started = time.perf_counter()


@flask_app.get("/")
def index() -> str:
    return render_template_string(
        PAGE,
        orders=ORDERS,
        rendered=time.strftime("%H:%M:%S"),
        max_item=MAX_ITEM,
        max_quantity=MAX_QUANTITY,
    )


@flask_app.get("/about")
def about() -> str:
    elapsed_ms = round((time.perf_counter() - g.started) * 1000, 2)
    return render_template_string(ABOUT, elapsed_ms=elapsed_ms)


@flask_app.post("/orders")
def place_order() -> Any:
    item = request.form.get("item", "").strip()
    try:
        quantity = int(request.form.get("quantity", "1"))
    except ValueError:
        quantity = 0
    if not item or len(item) > MAX_ITEM or not 1 <= quantity <= MAX_QUANTITY:
        return (
            f"an order needs an item of 1 to {MAX_ITEM} characters and a"
            f" quantity from 1 to {MAX_QUANTITY}\n",
            400,
        )
    order = {"number": len(ORDERS) + 1, "item": item, "quantity": quantity}
    ORDERS.append(order)
    order_id = broker.publish("orders", order, event="order")
    if request.accept_mimetypes.best == "application/json":
        return {"id": order_id, **order}, 201
    return redirect("/", code=303)


@flask_app.get("/_gsse/gsse.js")
def gsse_js() -> Any:
    """The browser module the page imports (gsse.App serves it by itself)."""
    return send_file(gsse.static_file("gsse.js"), mimetype="text/javascript")


@flask_app.get("/feed")
def feed() -> gsse.SSEResponse:
    """The live feed: every order placed from now on, on any page."""
    return broker.stream("orders")


# The one line that gives the Flask app its streams' server features under
# any gevent host (see docs/flask.md).
app = gsse.SSEMiddleware(flask_app)
