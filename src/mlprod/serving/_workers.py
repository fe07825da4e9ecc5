"""Several worker processes behind one port: ``mlprod serve --workers N``.

The parent binds the socket once and starts N workers that all accept on it; each builds
its own app (model pool, prediction log, spool subfolder) and follows the registry on its
own, so they converge exactly as separate replicas do. The parent restarts a worker that
dies and, on SIGTERM or Ctrl+C, passes the signal on and waits for every worker to drain.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

from mlprod.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("mlprod.serving")

RESTART_PAUSE = 1.0  # seconds between restarts of a crashing worker


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket the workers share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


AppFactory = Callable[[Settings, str], "FastAPI"]


def _worker(settings: Settings, alias: str, sock: socket.socket, factory: AppFactory) -> None:
    """One worker process: its own app on the shared socket."""
    from mlprod.serving._guard import run_server

    host, port = sock.getsockname()[:2]
    app = factory(settings, alias)
    run_server(
        app,
        host=host,
        port=port,
        grace_period=settings.grace_period,
        state=app.state.guard,
        sockets=[sock],
    )


class Supervisor:
    """Starts `workers` processes on one socket and keeps that many running until stopped."""

    def __init__(
        self,
        settings: Settings,
        alias: str,
        sock: socket.socket,
        workers: int,
        factory: AppFactory,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.alias = alias
        self.sock = sock
        self.count = workers
        self.context = multiprocessing.get_context("spawn")  # no inherited threads or engines
        self.processes: list[BaseProcess] = []
        self.stopping = False

    def _start(self) -> BaseProcess:
        process = self.context.Process(
            target=_worker,
            args=(self.settings, self.alias, self.sock, self.factory),
            name="mlprod-worker",
        )
        process.start()
        return process

    def _signal(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> None:
        """Block until SIGTERM or SIGINT, then drain every worker within the grace period."""
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        self.processes = [self._start() for _ in range(self.count)]
        while not self.stopping:
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self.stopping:
                    log.error(
                        "worker %s exited with %s; starting another", process.pid, process.exitcode
                    )
                    time.sleep(RESTART_PAUSE)
                    self.processes[index] = self._start()
            time.sleep(0.2)
        self._stop_all()

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: readiness off, drain, exit
        deadline = time.monotonic() + self.settings.grace_period + 2.0
        for process in self.processes:
            process.join(max(deadline - time.monotonic(), 0.0))
            if process.is_alive():
                process.kill()
                process.join()
        self.sock.close()


def default_factory(settings: Settings, alias: str) -> FastAPI:
    """The serving app, as `mlprod serve` builds it without extras."""
    from mlprod.serving._app import create_app

    return create_app(settings, alias=alias)


def run_workers(
    settings: Settings,
    alias: str,
    *,
    host: str,
    port: int,
    workers: int,
    factory: AppFactory = default_factory,
) -> None:
    """Serve with `workers` processes on `host`:`port` until SIGTERM or Ctrl+C.

    `factory` builds each worker's app; it must be a module-level function (workers are
    started fresh and import it by name).
    """
    Supervisor(settings, alias, bind(host, port), workers, factory).run()
