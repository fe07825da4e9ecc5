// The dashboard's only script: draw charts, follow the page's event stream, send admin actions.
(function () {
  "use strict";
  const body = document.body;
  const status = document.getElementById("live-status");

  function draw(charts) {
    for (const [id, figure] of Object.entries(charts || {})) {
      const element = document.getElementById(id);
      if (element && window.Plotly) {
        Plotly.react(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
      }
    }
  }

  function follow() {
    const page = body.dataset.page;
    if (page !== "overview" && page !== "model") return;
    const params = new URLSearchParams({ page: page, period: body.dataset.period });
    if (body.dataset.name) params.set("name", body.dataset.name);
    const source = new EventSource("/ui/events?" + params.toString());
    source.addEventListener("open", function () { status.textContent = "live"; });
    source.addEventListener("update", function (event) {
      const update = JSON.parse(event.data);
      const live = document.getElementById("live");
      live.innerHTML = update.html;
      live.dataset.updates = String(Number(live.dataset.updates || "0") + 1);
      draw(update.charts);
      status.textContent = "live · " + new Date().toLocaleTimeString();
    });
    source.addEventListener("error", function () { status.textContent = "reconnecting…"; });
  }

  // A run's training page: poll its telemetry while it trains, redraw, stop when it ends.
  function poll() {
    const box = document.getElementById("training");
    const state = document.getElementById("run-status");
    if (!box || !state || state.dataset.status !== "running") return;
    const timer = setInterval(async function () {
      const answer = await fetch("/ui/api/runs/" + box.dataset.run + "/training");
      if (!answer.ok) return;
      const detail = await answer.json();
      const known = box.dataset.charts;
      if (Object.keys(detail.charts).join(" ") !== known) {
        clearInterval(timer);
        location.reload(); // a network started: its chart boxes come from the server
        return;
      }
      draw(detail.charts);
      for (const n of detail.networks) {
        const epochs = box.querySelector('[data-candidate="' + n.candidate + '"] [data-epochs]');
        if (epochs) { epochs.dataset.epochs = String(n.epochs); epochs.textContent = n.epochs + " epochs"; }
      }
      state.dataset.status = detail.run.status;
      state.textContent = detail.run.status;
      if (detail.run.status !== "running") { clearInterval(timer); location.reload(); }
    }, 2000);
  }

  function payload(form) {
    const data = {};
    for (const field of form.elements) {
      if (!field.name) continue;
      if (field.type === "checkbox") data[field.name] = field.checked;
      else if (field.value !== "") data[field.name] = field.value;
    }
    if (typeof data.routes === "string") {
      data.routes = data.routes.split(",").map(function (pair) {
        const parts = pair.trim().split("=");
        return { version: Number(parts[0]), weight: Number(parts[1] || 100) };
      });
    }
    if (typeof data.shadows === "string") {
      data.shadows = data.shadows.split(",").map(function (v) { return Number(v.trim()); });
    }
    if (data.version !== undefined) data.version = Number(data.version);
    return data;
  }

  async function act(event) {
    const form = event.target.closest("form[data-action]");
    if (!form) return;
    event.preventDefault();
    const tokenField = document.getElementById("admin-token");
    const token = tokenField.value || sessionStorage.getItem("mlprod-admin-token") || "";
    if (tokenField.value) sessionStorage.setItem("mlprod-admin-token", tokenField.value);
    const result = document.getElementById("admin-result");
    const answer = await fetch(form.dataset.action, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer " + token },
      body: JSON.stringify(payload(form)),
    });
    const document_ = await answer.json();
    result.className = answer.ok ? "good" : "bad";
    result.textContent = answer.ok ? "done" : (document_.error ? document_.error.message : JSON.stringify(document_.detail));
  }

  const initial = document.getElementById("charts");
  if (initial) draw(JSON.parse(initial.textContent));
  document.addEventListener("submit", act);
  follow();
  poll();
})();
