"""A closed-loop HTTP load generator light enough to overload a server: one asyncio process.

Each client holds a keep-alive connection and sends the next request as soon as the last
answer is read (reconnecting when the server closes). Threads of an HTTP client library
spend more CPU than the server they measure, so overload figures need this instead (or
wrk, when it is installed). Prints one JSON line: answers per status and seconds run.

    python benchmarks/_load.py http://127.0.0.1:8000/v1/models/churn/predict body.json 320 6
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit


def request_bytes(url: str, body: bytes) -> tuple[str, int, bytes]:
    """Host, port and the raw POST request for `url` carrying `body`."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return host, port, head.encode() + body


async def _client(host: str, port: int, request: bytes, until: float, seen: Counter[int]) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            seen[0] += 1
            await asyncio.sleep(0.01)
            continue
        try:
            while time.monotonic() < until:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = next(
                    int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length")
                )
                await reader.readexactly(length)
                seen[int(head[9:12])] += 1
                if b"connection: close" in lines:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            seen[0] += 1  # a reset or a closed connection: counted apart, then reconnect
        finally:
            writer.close()


async def run(url: str, body: bytes, clients: int, seconds: float) -> dict[str, object]:
    """Answers per status (0: connection errors) from `clients` back-to-back clients."""
    host, port, request = request_bytes(url, body)
    seen: Counter[int] = Counter()
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(*(_client(host, port, request, until, seen) for _ in range(clients)))
    return {"statuses": {str(k): v for k, v in seen.items()}, "seconds": time.monotonic() - started}


if __name__ == "__main__":
    target, body_file, count, duration = sys.argv[1:5]
    payload = Path(body_file).read_bytes()
    print(json.dumps(asyncio.run(run(target, payload, int(count), float(duration)))))
