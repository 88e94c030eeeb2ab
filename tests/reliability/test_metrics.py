"""Prometheus metrics: what the server counts, on a path the user chooses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gsse import Server
from gsse import SSEWriter
from gsse.exceptions import CloseReason
from gsse.metrics import STATS
from gsse.metrics import cause_of
from gsse.metrics import metrics_app
from tests.helpers import RawStream
from tests.helpers import http_get
from tests.helpers import wait_until
from tests.reliability.support import stream_app

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

Serve = Callable[..., Server]

pytestmark = pytest.mark.timeout(30)


def scrape(port: int, path: str = "/metrics") -> dict[str, float]:
    """Every sample of the exposition, keyed by name and labels."""
    status, body = http_get(port, path)
    assert status == 200
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = (
                sample.value
            )
    return samples


def test_metrics_path_serves_stream_counters(serve: Serve) -> None:
    """Open streams, writes, bytes and disconnects by cause show up at scrape time."""

    def three(writer: SSEWriter) -> None:
        for i in range(3):
            writer.send_event(str(i))

    server = serve(stream_app(three), metrics_path="/metrics")
    first = scrape(server.port)
    with RawStream(server.port) as stream:
        stream.read_until(b"data: 2")
        during = scrape(server.port)
        assert during["gsse_open_streams"] >= 1
        assert during["gsse_writes_total"] >= first["gsse_writes_total"] + 3
        assert during["gsse_sent_bytes_total"] > first["gsse_sent_bytes_total"]
    assert wait_until(lambda: len(server.registry) == 0)
    after = scrape(server.port)
    key = "gsse_disconnects_total{cause=client}"
    assert after[key] >= first.get(key, 0) + 1
    assert "gsse_send_timeouts_total" in after
    assert "gsse_loop_blocks_total" in after
    assert "gsse_broker_lag_seconds" in after
    # The app still answers its own paths.
    assert http_get(server.port) == (200, b"ok")


def test_metrics_app_on_its_own_registry_counts_callback_errors(serve: Serve) -> None:
    """metrics_app(registry) can be mounted anywhere; callback errors are counted."""
    registry = prometheus_client.CollectorRegistry()

    def broken(writer: SSEWriter) -> None:
        raise RuntimeError("boom")

    server = serve(stream_app(broken))
    metrics_server = serve(metrics_app(registry))
    before = scrape(metrics_server.port, "/")["gsse_callback_errors_total"]
    with RawStream(server.port) as stream:
        stream.read_to_end()
    assert scrape(metrics_server.port, "/")["gsse_callback_errors_total"] == before + 1


def test_the_hot_path_counts_plain_ints() -> None:
    """STATS holds plain numbers; prometheus is only read at scrape time."""
    assert isinstance(STATS.writes, int) and isinstance(STATS.bytes, int)
    assert cause_of(CloseReason.SEND_TIMEOUT) == "send_timeout"
    assert cause_of(CloseReason.SEND_FAILED) == cause_of("send_failed") == "client"
    assert cause_of("something new") == "other"


def test_a_bad_metrics_path_is_rejected() -> None:
    """metrics_path must be an absolute path."""
    with pytest.raises(ValueError, match="metrics_path"):
        Server(stream_app(lambda w: None), "127.0.0.1", 0, metrics_path="metrics")
