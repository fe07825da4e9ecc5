"""Regenerate the dashboard screenshots in docs/ from a real server with real traffic.

    .venv/bin/python docs/screenshot.py        # needs Debian's chromium; about a minute

Three models on generated churn data: one healthy, one whose inputs drifted (a feed
broke, prices rose), one whose live labels disagree with it. Each gets traffic and
outcomes through `mlprod serve --ui`; then headless Chromium photographs the overview
and a model page.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from mlprod.data import make_churn_table
from mlprod.features import json_safe
from mlprod.pipelines import promote, train

HERE = Path(__file__).resolve().parent
SPEC = """\
name: {name}
data:
  {{source: customers.csv, target: churned, positive: true, time: event_time, entity: customer_id}}
split: {{method: time, test_size: 0.2, gap: 7d}}
candidates: [logistic_regression, lightgbm]
gates: {{roc_auc: ">= 0.75", recall: ">= 0.5"}}
"""
MODELS = {"churn": 0.0, "churn-eu": 1.0, "upsell": 0.0}  # name: drift of its live traffic


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def records(drift: float, seed: int) -> tuple[list[dict[str, object]], list[bool]]:
    frame = make_churn_table(3_000, seed=seed, drift=drift)
    labels = frame.pop("churned").tolist()
    rows = [{k: json_safe(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return rows, labels


def build(root: Path) -> str:
    store = str(root / ".mlprod")
    for name in MODELS:
        folder = root / name
        folder.mkdir(parents=True)
        make_churn_table(8_000, seed=7).to_csv(folder / "customers.csv", index=False)
        (folder / "mlprod.yaml").write_text(SPEC.format(name=name), encoding="utf-8")
        run = train(folder / "mlprod.yaml", store=store)
        promote(name, run.version, "production", store=store, actor="screenshot")
    train(root / "churn" / "mlprod.yaml", store=store)  # a candidate in development
    return store


def traffic(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for seed, (name, drift) in enumerate(MODELS.items(), start=20):
            rows, labels = records(drift, seed)
            answered = []
            for start in range(0, len(rows), 100):
                body = {"records": rows[start : start + 100]}
                answered += client.post(f"/v1/models/{name}/predict", json=body).json()[
                    "predictions"
                ]
            wrong = name == "upsell"  # its world changed: the labels no longer follow the inputs
            outcomes = [
                {"prediction_id": p["id"], "label": (not y) if wrong else y}
                for p, y in list(zip(answered, labels, strict=True))[:800]
            ]
            client.post("/v1/outcomes", json={"outcomes": outcomes}).raise_for_status()


def photograph(url: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 420})
        page.goto(url + "/ui/?period=24h")
        page.wait_for_function("document.getElementById('live').dataset.updates !== '0'")
        page.screenshot(path=str(HERE / "dashboard.png"), full_page=True)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(url + "/ui/models/churn-eu?period=24h")
        page.locator("#chart-drift .main-svg").first.wait_for()
        page.wait_for_timeout(500)
        page.screenshot(path=str(HERE / "dashboard-model.png"), full_page=False)
        browser.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mlprod-docs-") as tmp:
        root = Path(tmp)
        store = build(root)
        port = free_port()
        env = {**os.environ, "MLPROD_STORE": store, "MLPROD_MONITOR_BUCKET": "300"}
        server = subprocess.Popen(
            [sys.executable, "-m", "mlprod", "serve", "--ui", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            traffic(url)
            time.sleep(3)  # merged and matched
            subprocess.run(
                [sys.executable, "-m", "mlprod", "monitor", "churn-eu", "--json"],
                env=env,
                capture_output=True,
                check=True,
            )  # opens its drift alerts
            photograph(url)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {HERE / 'dashboard.png'} and {HERE / 'dashboard-model.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
