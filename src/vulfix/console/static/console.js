// vulfix console: live regions, on-demand output, and the fix flow's snapshot warning.
// Everything works without this file; it only saves reloading and clicking.
"use strict";

const LIVE_EVERY_MS = 2000;

// A region with data-live="URL" is refreshed from URL (a server-rendered fragment). The
// server tags fragments, so an unchanged one costs a 304 and no DOM work. Open output panes
// and keyboard focus survive a refresh.
function keepLive(region) {
  let etag = null;
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const headers = etag ? { "If-None-Match": etag } : {};
      const answer = await fetch(region.dataset.live, { headers, credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.reload(); return; }
      if (answer.status !== 200) return;
      etag = answer.headers.get("ETag");
      replace(region, await answer.text());
    } catch (error) {
      // A replica restarting or a network blip: the next tick tries again.
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, LIVE_EVERY_MS);
}

function replace(region, html) {
  const open = [...region.querySelectorAll("details[open]")].map((d) => [d.id, d.querySelector(".log-body").innerHTML]);
  const focused = document.activeElement && region.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  region.innerHTML = html;
  for (const [id, body] of open) {
    const details = document.getElementById(id);
    if (details) { details.querySelector(".log-body").innerHTML = body; details.open = true; loadLog(details); }
  }
  if (focused) {
    const again = region.querySelector(focused);
    if (again) again.focus();
  }
  wire(region);
}

function focusKey(element) {
  if (element.id) return "#" + CSS.escape(element.id);
  const label = element.getAttribute("aria-label");
  return label ? `${element.tagName.toLowerCase()}[aria-label="${CSS.escape(label)}"]` : null;
}

async function loadLog(details) {
  const body = details.querySelector(".log-body");
  const answer = await fetch(details.dataset.logUrl, { credentials: "same-origin", cache: "no-store" });
  if (answer.status === 200) body.innerHTML = await answer.text();
}

function wire(root) {
  for (const details of root.querySelectorAll("details[data-log-url]")) {
    details.addEventListener("toggle", () => { if (details.open) loadLog(details); });
  }
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
  }
}

// The fix flow: with 0 days of snapshots, say before submitting which picked hosts have no
// snapshot from the last 24 hours (the server checks again on submit).
function fixFlow(form) {
  const days = form.querySelector("#save_days");
  const warning = form.querySelector("#snapshot-warning");
  const list = warning.querySelector("[data-stale-list]");
  const boxes = () => [...form.querySelectorAll('input[name="quuids"]')];
  async function check() {
    const picked = boxes().filter((box) => box.checked);
    if (days.value !== "0" || picked.length === 0) { warning.hidden = true; return; }
    const body = new URLSearchParams();
    body.append("csrf_token", form.elements.csrf_token.value);
    for (const box of picked) body.append("quuids", box.value);
    const answer = await fetch(form.dataset.snapshotCheck, { method: "POST", body, credentials: "same-origin" });
    if (answer.status !== 200) return;
    const { stale } = await answer.json();
    const names = new Map(picked.map((box) => [box.value, box.dataset.hostName || box.value]));
    list.replaceChildren(...stale.map((quuid) => { const item = document.createElement("li"); item.textContent = names.get(quuid) || quuid; return item; }));
    warning.hidden = stale.length === 0;
  }
  days.addEventListener("input", check);
  form.addEventListener("change", (event) => { if (event.target.name === "quuids") check(); });
  const all = form.querySelector("[data-select-all]");
  if (all) all.addEventListener("click", () => { for (const box of boxes()) box.checked = true; check(); });
  form.addEventListener("submit", (event) => {
    const confirmBox = warning.querySelector('input[name="confirm_without_snapshot"]');
    if (!warning.hidden && !confirmBox.checked) { event.preventDefault(); confirmBox.focus(); }
  });
  check();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-live]")) keepLive(region);
  wire(document);
  const flow = document.getElementById("fix-flow");
  if (flow && flow.querySelector("#save_days")) fixFlow(flow);
});
