"""What the Host check and the crash catcher add to every request, in microseconds.

One command::

    .venv/bin/python benchmarks/edge.py            # a few seconds

Both are plain ASGI layers in front of every route, the predict path included. The run
calls a trivial ASGI app directly, bare and wrapped, in interleaved passes, and prints
the median per-request time of each and their difference: the cost a request pays for
the layers, free of network and scoring noise. Compare it with a request's time in
`serve.py` (hundreds of microseconds for one record).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from mlprod.serving._crashes import CrashLog, ThrottledLog
from mlprod.serving._hosts import HostCheck

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/v1/models/churn/predict",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"content-type", b"application/json"),
        (b"content-length", b"900"),
    ],
}


async def trivial(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _send(message: Any) -> None:
    return None


async def per_request_us(app: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await app(SCOPE, _receive, _send)
    return (time.perf_counter() - started) / calls * 1e6


async def run(passes: int, calls: int) -> dict[str, float]:
    allowed = frozenset({"127.0.0.1", "localhost", "::1"})
    layers = {
        "bare app": trivial,
        "Host check": HostCheck(trivial, allowed=allowed),
        "crash catcher": CrashLog(trivial, log=ThrottledLog()),
        "both (as in mlprod serve)": HostCheck(
            CrashLog(trivial, log=ThrottledLog()), allowed=allowed
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(passes):
        for name, app in layers.items():
            times[name].append(await per_request_us(app, calls))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=7, help="interleaved passes (7)")
    parser.add_argument("--calls", type=int, default=50_000, help="requests per pass (50,000)")
    args = parser.parse_args()
    medians = asyncio.run(run(args.passes, args.calls))
    bare = medians["bare app"]
    print(f"{'layer':<28}{'us/request':>12}{'added':>10}")
    for name, value in medians.items():
        print(f"{name:<28}{value:>12.2f}{value - bare:>10.2f}")
    print(f"median of {args.passes} interleaved passes of {args.calls:,} calls each")


if __name__ == "__main__":
    main()
