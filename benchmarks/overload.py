"""What an orchestrator sees: overload, SIGTERM under load, and a store down at start.

One command, two code trees side by side (`--before` a checkout of an older mlprod, the
current tree after it)::

    .venv/bin/python benchmarks/overload.py --before ../mlprod-old/src
    .venv/bin/python benchmarks/overload.py --before ../mlprod-old/src --duration 3

For each tree it starts `mlprod serve` (pinned to core 0 when `taskset` exists) over the
same trained model and measures:

* accepted throughput (answers 200 per second) at capacity (`--clients`, the server's
  concurrency limit) and at 5x overload (5x as many clients, all back to back), with
  wrk when it is installed, else the asyncio load generator of `_load.py` (either pinned
  to core 1);
* SIGTERM under load: keep-alive clients that stop reconnecting 0.3 s after the signal,
  as behind a load balancer; connection resets, and seconds from the signal to exit;
* start-up with the store unreachable: whether the process is still up after 10 s,
  /healthz and /readyz, and whether it serves once the store answers again.

Passes alternate between the trees (`--passes`); each figure is the median of its passes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve import client_rows  # noqa: E402 - the serving benchmark's request records

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("%(body)s"):read("*a")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0 end
function response(status, headers, body) if status == 200 then ok = ok + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("ok") end
  io.write(string.format('\\nRESULT {"ok": %%d, "requests": %%d, "duration_us": %%d}\\n',
    total, summary.requests, summary.duration))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """`mlprod serve` from one code tree, pinned to core 0."""

    def __init__(self, src: str, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() != 1 else []
        argv = [*pin, sys.executable, "-m", "mlprod", "serve", "--port", str(self.port)]
        full = {**os.environ, "PYTHONPATH": src, "MLPROD_COMPILE_TREES": "false", **env}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            argv, cwd=folder, env=full, stdout=subprocess.DEVNULL, stderr=self.log
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def wait_healthy(self, timeout: float = 600.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- overload ------------------------------------------------------------------------------


def accepted_per_second(url: str, body: Path, clients: int, seconds: float) -> float:
    """Answers 200 per second from `clients` connections sending back to back."""
    if shutil.which("wrk"):
        script = body.with_suffix(".lua")
        script.write_text(WRK_SCRIPT % {"body": body}, encoding="utf-8")
        pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
        threads = str(min(clients, 4))
        argv = [*pin, "wrk", "-t", threads, "-c", str(clients), "-d", f"{max(int(seconds), 1)}s"]
        done = subprocess.run(
            [*argv, "-s", str(script), url + "/v1/models/churn/predict"],
            capture_output=True, text=True, timeout=seconds + 120,
        )  # fmt: skip
        found = re.search(r"RESULT (\{.*\})", done.stdout)
        if found is None:
            raise RuntimeError(done.stdout + done.stderr)
        result = json.loads(found.group(1))
        return float(result["ok"]) / (result["duration_us"] / 1e6)
    return _python_load(url, body.read_bytes(), clients, seconds)


def _python_load(url: str, body: bytes, clients: int, seconds: float) -> float:
    """The asyncio load generator of `_load.py` in its own process, pinned to core 1."""
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(body)
        file.flush()
        pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
        argv = [*pin, sys.executable, str(HERE / "_load.py")]
        argv += [url + "/v1/models/churn/predict", file.name, str(clients), str(seconds)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    result = json.loads(done.stdout)
    return float(result["statuses"].get("200", 0)) / float(result["seconds"])


# --- SIGTERM under load -------------------------------------------------------------------


def sigterm_under_load(server: Serve, body: bytes, clients: int = 16) -> dict[str, float]:
    """Resets and seconds to exit when SIGTERM arrives under keep-alive load."""
    resets, answered = [0], [0]
    lock = threading.Lock()
    sent: list[float] = []

    def listed() -> bool:
        return not sent or time.monotonic() - sent[0] < 0.3

    def run() -> None:
        while listed():
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while True:
                    try:
                        answer = client.post("/v1/models/churn/predict", content=body)
                    except httpx.ConnectError:
                        break
                    except httpx.TransportError:
                        with lock:
                            resets[0] += 1
                        return
                    with lock:
                        answered[0] += 1
                    if answer.headers.get("connection") == "close":
                        break

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)
    sent.append(time.monotonic())
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(120)
    exit_s = time.monotonic() - sent[0]
    for thread in threads:
        thread.join(60)
    return {"resets": resets[0], "exit_s": exit_s, "answered": answered[0]}


# --- a store down at start ---------------------------------------------------------------


def start_with_store_down(src: str, folder: Path) -> dict[str, Any]:
    """A PostgreSQL URL on a port nothing listens on: does the server stay up?"""
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/mlprod"
    server = Serve(src, folder, {"MLPROD_STORE": dead})
    started = time.monotonic()
    try:
        healthy = server.wait_healthy(timeout=30)
        while time.monotonic() - started < 10 and server.process.poll() is None:
            time.sleep(0.1)
        alive = server.process.poll() is None
        ready = httpx.get(server.url + "/readyz", timeout=5).status_code if alive else None
        lived = "still up" if alive else f"exited after {time.monotonic() - started:.1f} s"
        return {"healthz answered": healthy, "after 10 s": lived, "readyz": ready}
    finally:
        server.stop()


def train_with(src: str, folder: Path) -> None:
    """Train the benchmark's model in a process that imports mlprod from `src`."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path; "
        f"from serve import train_model; train_model(Path({str(folder)!r}), rows=5000)"
    )
    env = {**os.environ, "PYTHONPATH": src}
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=1800)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="src folder of the older mlprod")
    parser.add_argument("--after", default=str(HERE.parent / "src"))
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=64, help="the concurrency limit")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--records", type=int, default=1, help="records per request")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="mlprod-overload-"))
    try:
        train_with(args.before, folder / "before")  # the older tree's schema: both read it
        # Each tree serves its own copy: the newer one migrates the store forward on start.
        shutil.copytree(folder / "before", folder / "after")
        body = folder / "body.json"
        body.write_text(json.dumps({"records": client_rows(args.records)}), encoding="utf-8")
        trees = {"before": args.before, "after": args.after}
        env = {"MLPROD_MAX_CONCURRENCY": str(args.clients), "MLPROD_GRACE_PERIOD": "10"}
        figures: dict[str, dict[str, list[float]]] = {k: {} for k in trees}
        for _ in range(args.passes):
            for name, src in trees.items():
                server = Serve(src, folder / name, env)
                if not server.wait_healthy():
                    raise RuntimeError(f"{name}: the server did not start: {server.output()}")
                for label, clients in (("capacity", args.clients), ("5x", 5 * args.clients)):
                    rate = accepted_per_second(server.url, body, clients, args.duration)
                    figures[name].setdefault(label, []).append(rate)
                for key, value in sigterm_under_load(server, body.read_bytes()).items():
                    figures[name].setdefault(key, []).append(value)
                server.stop()
        print(f"\n{'':28}{'before':>14}{'after':>14}")
        for key in ("capacity", "5x", "resets", "exit_s", "answered"):
            row = [statistics.median(figures[name][key]) for name in trees]
            print(f"{key:28}" + "".join(f"{value:>14,.1f}" for value in row))
        for name in trees:
            share = statistics.median(figures[name]["5x"]) / statistics.median(
                figures[name]["capacity"]
            )
            print(f"{name}: at 5x overload, {share:.0%} of capacity (every pass: "
                  f"{[round(v) for v in figures[name]['capacity']]} / "
                  f"{[round(v) for v in figures[name]['5x']]} req/s); "
                  f"resets {figures[name]['resets']}, exit s "
                  f"{[round(v, 1) for v in figures[name]['exit_s']]}")  # fmt: skip
        for name, src in trees.items():
            print(f"{name}: store down at start: {start_with_store_down(src, folder / name)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
