"""The Bybit client against recorded pages served by a local HTTP server on 127.0.0.1 only."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

import msa_lib.datasets  # noqa: F401  (imported here so the offline test times the network path)
from msa_lib.bybit import BybitError, BybitGapWarning, fetch_bybit_klines
from msa_lib.data import OHLCVError

FIXTURES = Path(__file__).parent / "fixtures" / "bybit"
HOUR_MS = 3_600_000
T0 = pd.Timestamp("2024-01-01", tz="UTC")
T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
T10 = T0 + pd.Timedelta(hours=10)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        server: _Server = self.server  # type: ignore[assignment]
        server.requests.append(query)
        status, body, delay = 200, None, 0.0
        if server.queue:
            status, body, delay = server.queue.pop(0)
        if body is None:
            name = f"{server.prefix}{query.get('symbol')}_{query.get('interval')}_{query.get('start')}.json"
            page = FIXTURES / name
            if query.get("symbol") != "BTCUSDT":
                page = FIXTURES / "error_symbol_invalid.json"
            elif not page.is_file():
                page = FIXTURES / f"{query.get('symbol')}_{query.get('interval')}_{query.get('start')}.json"
            body = page.read_bytes()
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)  # loopback only, a free port
        self.requests: list[dict[str, str]] = []
        self.queue: list[tuple[int, bytes | None, float]] = []
        self.prefix = ""  # "gap_" or "live_": serve that variant of a page when it exists

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture()
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture()
def fetch(server, tmp_path):
    """fetch_bybit_klines aimed at the local server, with no proxies, a temp cache, no real sleeps."""
    sleeps: list[float] = []

    def call(start=T0, end=T10, **kw):
        options = {
            "base_url": server.url,
            "cache_dir": tmp_path / "cache",
            "limit": 4,
            "timeout": 2.0,
            "opener": urllib.request.build_opener(urllib.request.ProxyHandler({})),
            "sleep": sleeps.append,
        }
        options.update(kw)
        return fetch_bybit_klines(kw.pop("symbol", "BTCUSDT"), "60", start, end,
                                  **{k: v for k, v in options.items() if k != "symbol"})

    call.sleeps = sleeps
    return call


def _fixture_rows(start_ms: int) -> list[list[str]]:
    payload = json.loads((FIXTURES / f"BTCUSDT_60_{start_ms}.json").read_text())
    return payload["result"]["list"]


def test_pages_are_joined_oldest_first_and_relabelled_by_close_time(fetch, server):
    bars = fetch()
    # three request windows of 4 hourly klines, aligned on 4-hour multiples since the epoch
    starts = [int(q["start"]) for q in server.requests]
    assert starts == [T0_MS, T0_MS + 4 * HOUR_MS, T0_MS + 8 * HOUR_MS]
    assert all(int(q["end"]) - int(q["start"]) == 4 * HOUR_MS - 1 for q in server.requests)
    assert all(q["limit"] == "4" and q["category"] == "linear" for q in server.requests)
    # klines starting 00:00 .. 09:00 -> bars closing 01:00 .. 10:00
    expected = pd.date_range(T0 + pd.Timedelta(hours=1), periods=10, freq="h", name="time")
    assert bars.index.equals(expected)
    assert bars.index.is_monotonic_increasing
    # the bar that closes at 01:00 is the kline that started at 00:00 (the last row of page 1)
    first = _fixture_rows(T0_MS)[-1]
    assert bars.iloc[0].tolist() == [float(x) for x in first[1:7]]
    assert list(bars.columns) == ["open", "high", "low", "close", "volume", "turnover"]
    assert bars.attrs["gaps"] == []


def test_second_call_reads_the_cache_and_sends_nothing(fetch, server):
    first = fetch()
    n = len(server.requests)
    again = fetch()
    part = fetch(start=T0 + pd.Timedelta(hours=2), end=T0 + pd.Timedelta(hours=6))
    assert len(server.requests) == n  # nothing refetched
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(part, first.loc["2024-01-01 03:00":"2024-01-01 06:00"])
    fetch(use_cache=False)
    assert len(server.requests) == 2 * n  # without the cache every page is fetched again


def test_kline_still_open_is_dropped_and_its_page_not_cached(fetch, server):
    server.prefix = "live_"  # the 08:00 page as seen at 10:30: the 10:00 kline is open
    bars = fetch(end=T0 + pd.Timedelta(hours=12))
    assert bars.index[-1] == T0 + pd.Timedelta(hours=10)  # kline 09:00 closed at 10:00
    n = len(server.requests)
    fetch(end=T0 + pd.Timedelta(hours=12))
    refetched = [int(q["start"]) for q in server.requests[n:]]
    assert refetched == [T0_MS + 8 * HOUR_MS]  # only the incomplete window is asked again


def test_missing_klines_are_reported_not_filled(fetch, server):
    server.prefix = "gap_"
    with pytest.warns(BybitGapWarning, match="1 kline"):
        bars = fetch()
    assert len(bars) == 9
    assert T0 + pd.Timedelta(hours=6) not in bars.index  # kline 05:00 (close 06:00) is missing
    assert bars.attrs["gaps"] == [{
        "after": (T0 + pd.Timedelta(hours=5)).isoformat(),
        "before": (T0 + pd.Timedelta(hours=7)).isoformat(),
        "missing": 1,
    }]


def test_error_retcode_names_the_exchange_message_without_retrying(fetch, server):
    with pytest.raises(BybitError, match=r"retCode 10001.*symbol invalid"):
        fetch(symbol="NOSUCHCOIN")
    assert len(server.requests) == 1


def test_malformed_json_is_an_error(fetch, server):
    server.queue.append((200, (FIXTURES / "malformed.json").read_bytes(), 0.0))
    with pytest.raises(BybitError, match="malformed JSON"):
        fetch()


def test_wrong_field_type_is_an_error(fetch, server):
    page = json.loads((FIXTURES / f"BTCUSDT_60_{T0_MS}.json").read_text())
    page["result"]["list"][1][4] = 42590.3  # a number where Bybit sends a string
    server.queue.append((200, json.dumps(page).encode(), 0.0))
    with pytest.raises(BybitError, match="row 1 field 4 should be a string"):
        fetch()


def test_impossible_bar_is_rejected(fetch, server):
    page = json.loads((FIXTURES / f"BTCUSDT_60_{T0_MS}.json").read_text())
    page["result"]["list"][0][2] = "40000"  # high below low
    server.queue.append((200, json.dumps(page).encode(), 0.0))
    with pytest.raises(OHLCVError, match="high below"):
        fetch()


def test_rate_limits_are_retried_with_exponential_backoff(fetch, server):
    server.queue.append((429, b'{"retCode":10006}', 0.0))  # HTTP 429
    server.queue.append((200, (FIXTURES / "rate_limited.json").read_bytes(), 0.0))  # retCode 10006
    bars = fetch(backoff=0.5)
    assert len(bars) == 10
    assert fetch.sleeps == [0.5, 1.0]
    assert [int(q["start"]) for q in server.requests[:3]] == [T0_MS] * 3


def test_rate_limit_that_never_ends_gives_up(fetch, server):
    body = (FIXTURES / "rate_limited.json").read_bytes()
    server.queue.extend([(200, body, 0.0)] * 3)
    with pytest.raises(BybitError, match=r"after 3 attempts.*rate limited"):
        fetch(max_retries=2, backoff=0.25)
    assert fetch.sleeps == [0.25, 0.5]


def test_timeout_is_retried(fetch, server):
    server.queue.append((200, None, 1.0))  # answers after the client has given up
    bars = fetch(timeout=0.3, backoff=0.1)
    assert len(bars) == 10
    assert fetch.sleeps == [0.1]


def test_timeouts_every_time_fail_with_a_clear_message(fetch, server):
    server.queue.extend([(200, None, 1.0)] * 2)
    with pytest.raises(BybitError, match=r"after 2 attempts: timed out"):
        fetch(timeout=0.3, max_retries=1)


def test_offline_fails_fast_and_names_the_bundled_datasets(fetch):
    probe = _Server()  # take a free loopback port, then close it: nothing listens there
    port = probe.server_address[1]
    probe.server_close()
    t = time.perf_counter()
    with pytest.raises(BybitError, match=r"cannot reach 127\.0\.0\.1.*es_1min"):
        fetch(base_url=f"http://127.0.0.1:{port}", use_cache=False)
    assert time.perf_counter() - t < 2.0
    assert fetch.sleeps == []  # no retries when the host is unreachable


def test_bad_arguments_are_refused_before_any_request(fetch, server):
    with pytest.raises(ValueError, match="empty range"):
        fetch(start=T0, end=T0)
    with pytest.raises(ValueError, match="interval 'W' not supported"):
        fetch_bybit_klines("BTCUSDT", "W", T0, T0 + pd.Timedelta(days=30), base_url=server.url)
    with pytest.raises(ValueError, match="limit"):
        fetch(limit=1001)
    assert server.requests == []


def test_the_offline_hint_names_exactly_the_bundled_datasets():
    from msa_lib.bybit import _bundled_names
    from msa_lib.datasets import DATASETS

    assert _bundled_names() == sorted(DATASETS)


def test_bybit_does_not_import_datasets():
    """datasets re-exports fetch_bybit_klines, so bybit importing datasets would be a cycle."""
    import ast
    from pathlib import Path

    import msa_lib.bybit

    tree = ast.parse(Path(msa_lib.bybit.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert "msa_lib.datasets" not in imported
