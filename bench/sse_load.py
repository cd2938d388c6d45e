"""Closed-loop load on a streaming route, and slow readers, for ``bench.stream``.

``run_load``: N clients, each on one keep-alive connection, POST a body and
read the response to its end, then the next. Each counts the events of its
stream (``data:`` lines), and notes when the first arrived. Two clients: raw
sockets on asyncio streams (``raw``, the default: one read per arrival, the
bytes scanned, never parsed) and ``httpx`` (``AsyncClient.stream`` and
``aiter_raw``), to see what a client library costs.

``slow_readers``: many connections that each GET a large stream but read it
1 byte at a time from a tiny receive buffer, on one thread.
"""

import asyncio
import contextlib
import http.client
import resource
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
EVENT = b"data:"
END_CHUNKED = b"\r\n0\r\n\r\n"


@dataclass
class Window:
    """What the clients saw while ``measuring``: outputs, requests done, times to first output, failures."""

    measuring: bool = False
    outputs: int = 0
    requests: int = 0
    errors: int = 0
    first_s: list[float] = field(default_factory=list)
    whole_s: list[float] = field(default_factory=list)  # from sending to the end of the stream
    error: str = ""
    waiting: dict[int, float] = field(default_factory=dict)  # client -> when it sent a request with no output yet
    open: dict[int, float] = field(default_factory=dict)  # client -> when it sent the request it still reads
    censored: int = 0  # streams still waiting for their first output when the measurement ended

    def close(self) -> None:
        """End the measurement: a stream still waiting or still open counts with what it has waited so far."""
        self.measuring, now = False, time.perf_counter()
        self.censored = len(self.waiting)
        self.first_s += [now - sent for sent in self.waiting.values()]
        self.whole_s += [now - sent for sent in self.open.values()]

    def reset(self) -> None:
        self.outputs, self.requests, self.errors, self.first_s, self.whole_s, self.error = 0, 0, 0, [], [], ""

    def failed(self, me: int, error: Exception) -> None:
        """Client ``me``'s request failed: it waits for nothing more, and counts as an error while measuring."""
        self.waiting.pop(me, None)
        self.open.pop(me, None)
        if self.measuring:
            self.errors += 1
            self.error = self.error or f"{type(error).__name__}: {error}"


@dataclass
class _Stream:
    """One request's stream as its client reads it, noted in the ``window``: the events counted across reads (a
    ``data:`` may straddle two), when the first came, and the end."""

    window: Window
    me: int  # the client
    sent: float = field(default_factory=time.perf_counter)
    count: int = 0
    carry: bytes = b""  # the last bytes read, where a ``data:`` may begin

    def __post_init__(self) -> None:
        self.window.waiting[self.me] = self.window.open[self.me] = self.sent

    def read(self, data: bytes) -> None:
        """Count the events that ``data`` completes; the first one ends the wait."""
        new = (self.carry + data).count(EVENT) - self.carry.count(EVENT)
        if new and self.count == 0:
            self.window.waiting.pop(self.me, None)
            if self.window.measuring:
                self.window.first_s.append(time.perf_counter() - self.sent)
        self.count += new
        if self.window.measuring:
            self.window.outputs += new
        self.carry = (self.carry + data)[-(len(EVENT) - 1) :]

    def end(self, status: int) -> None:
        """The stream is over: one request more, and an error unless it was a 200 with events."""
        window = self.window
        window.waiting.pop(self.me, None)
        window.open.pop(self.me, None)
        if window.measuring:
            window.requests += 1
            window.whole_s.append(time.perf_counter() - self.sent)
            if status != 200 or self.count == 0:
                window.errors += 1
                window.error = window.error or f"HTTP {status}, {self.count} events"


@dataclass(frozen=True)
class Cell:
    """One measured load: N clients for ``wall_s``."""

    clients: int
    outputs_per_s: float
    requests_per_s: float
    first_p50_ms: float
    first_p99_ms: float
    whole_p50_ms: float  # a whole stream, from sending the request to its end
    censored: int  # first outputs still awaited at the end, counted as their wait so far
    errors: int
    error: str
    wall_s: float
    client_cpu: float  # CPU seconds per wall second of the load generator (this process)
    client_us_per_output: float


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def request_bytes(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Closed(Exception):
    """The server closed the connection."""


async def _raw_client(port: int, path: str, body: bytes, window: Window, stop: asyncio.Event) -> None:
    request, reader, writer, me = request_bytes(path, body), None, None, id(asyncio.current_task())
    while not stop.is_set():
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            assert reader is not None
            stream = _Stream(window, me)
            writer.write(request)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                if not (data := await reader.read(65536)):
                    raise _Closed
                buffer += data
            head, _, rest = buffer.partition(b"\r\n\r\n")
            status, lower = int(head[9:12]), head.lower()
            chunked = b"transfer-encoding: chunked" in lower
            length = -1
            for line in lower.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            keep = not (b"connection: close" in lower or (not chunked and length < 0))
            got, tail = 0, b"\r\n" if chunked else b""
            data = rest
            while True:
                if data:
                    got += len(data)
                    if status == 200:
                        stream.read(data)
                    tail = (tail + data)[-len(END_CHUNKED) :]
                if (chunked and tail == END_CHUNKED) or (0 <= length <= got):
                    break
                if not (data := await reader.read(65536)):
                    if chunked or length >= 0:
                        raise _Closed
                    break
            stream.end(status)
            if status != 200:
                await asyncio.sleep(0.05)
            if not keep:
                writer.close()
                reader, writer = None, None
        except (OSError, _Closed, ValueError) as error:
            window.failed(me, error)
            if writer is not None:
                writer.close()
            reader, writer = None, None
            await asyncio.sleep(0.05)


async def _httpx_client(client: object, url: str, body: bytes, window: Window, stop: asyncio.Event) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    me = id(asyncio.current_task())
    while not stop.is_set():
        try:
            stream = _Stream(window, me)
            async with client.stream("POST", url, content=body, headers=headers) as response:
                async for data in response.aiter_raw():
                    stream.read(data)
            stream.end(response.status_code)
        except httpx.HTTPError as error:
            window.failed(me, error)
            await asyncio.sleep(0.05)


async def _load(port: int, path: str, body: bytes, n: int, warmup: float, duration: float, kind: str) -> Cell:
    window, stop = Window(), asyncio.Event()
    httpx_client = None
    if kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        httpx_client = httpx.AsyncClient(limits=limits, timeout=60)
        url = f"http://{HOST}:{port}{path}"
        tasks = [asyncio.create_task(_httpx_client(httpx_client, url, body, window, stop)) for _ in range(n)]
    else:
        tasks = [asyncio.create_task(_raw_client(port, path, body, window, stop)) for _ in range(n)]
    try:
        await asyncio.sleep(warmup)
        window.reset()
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        window.measuring = True
        await asyncio.sleep(duration)
        window.close()
        wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if httpx_client is not None:
            await httpx_client.aclose()
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Cell(
        clients=n,
        outputs_per_s=window.outputs / wall,
        requests_per_s=window.requests / wall,
        first_p50_ms=percentile(window.first_s, 50) * 1e3,
        first_p99_ms=percentile(window.first_s, 99) * 1e3,
        whole_p50_ms=percentile(window.whole_s, 50) * 1e3,
        censored=window.censored,
        errors=window.errors,
        error=window.error,
        wall_s=wall,
        client_cpu=cpu / wall,
        client_us_per_output=cpu / max(window.outputs, 1) * 1e6,
    )


def run_load(port: int, path: str, body: bytes, n: int, warmup: float, duration: float, kind: str = "raw") -> Cell:
    """``n`` closed-loop clients on ``path`` for ``warmup`` then ``duration`` seconds; what they saw in the latter.

    The open streams are dropped at the end (the server sees the clients leave).
    """
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
        runner = asyncio.run
    return runner(_load(port, path, body, n, warmup, duration, kind))


@dataclass
class SlowReaders:
    """What ``slow_readers`` saw."""

    connected: int = 0
    answered_200: int = 0  # whose first bytes were "HTTP/1.1 200"
    bytes_read: int = 0
    closed_early: int = 0
    probe_ms: list[float] = field(default_factory=list)
    probe_failures: int = 0
    probe_error: str = ""


def slow_readers(
    port: int,
    path: str,
    clients: int,
    seconds: float,
    interval: float,
    rcvbuf: int,
    probe_path: str,
    probe_every: float,
) -> SlowReaders:
    """``clients`` connections GET ``path`` and read 1 byte every ``interval`` seconds from a ``rcvbuf``-byte
    receive buffer, for ``seconds``; meanwhile another client GETs ``probe_path`` every ``probe_every`` seconds,
    each on a new connection, and its latencies are kept. All sockets are closed at the end."""
    seen, sockets, heads = SlowReaders(), [], []
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect, so the window stays small
        try:
            sock.connect((HOST, port))
            sock.sendall(request)
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        sockets.append(sock)
        heads.append(b"")
    seen.connected = len(sockets)
    done = threading.Event()

    def probe() -> None:
        while not done.wait(probe_every):
            started = time.perf_counter()
            connection = http.client.HTTPConnection(HOST, port, timeout=30)
            try:
                connection.request("GET", probe_path)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise OSError(f"HTTP {response.status}")
                seen.probe_ms.append((time.perf_counter() - started) * 1e3)
            except OSError as error:
                seen.probe_failures += 1
                seen.probe_error = seen.probe_error or f"{type(error).__name__}: {error}"
            finally:
                connection.close()

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    end, open_ = time.monotonic() + seconds, set(range(len(sockets)))
    try:
        while time.monotonic() < end:
            tick = time.monotonic()
            for i in list(open_):
                try:
                    byte = sockets[i].recv(1)
                except BlockingIOError:
                    continue
                except OSError:
                    byte = b""
                if not byte:
                    seen.closed_early += 1
                    open_.discard(i)
                    continue
                seen.bytes_read += 1
                if len(heads[i]) < 12:
                    heads[i] += byte
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    finally:
        done.set()
        prober.join(35)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
    seen.answered_200 = sum(head.startswith(b"HTTP/1.1 200") for head in heads)
    return seen


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
