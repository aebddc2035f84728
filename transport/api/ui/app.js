// Corral web UI: plain JavaScript, no dependencies, talks only to the server
// that served it. Untrusted text (commands, output) is always set with
// textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("corral.token") || "",
  current: null,    // selected session id
  ws: null,
  lastId: -1,       // last event id rendered for the current session
  retry: 0,
  actions: new Map(), // action id -> DOM element of the action
  live: new Map(),    // action id -> <pre> of streaming output
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (res.status === 401) $("token-form").classList.remove("hidden");
  if (!res.ok) {
    const msg = data && data.error ? data.error.message : res.status + " " + res.statusText;
    throw new Error(msg);
  }
  return data;
}

// ---- sessions list -------------------------------------------------------

async function refreshSessions() {
  let data;
  try { data = await api("GET", "/api/sessions"); } catch (_) { return; }
  const ul = $("sessions");
  ul.textContent = "";
  for (const s of data.sessions.slice().reverse()) {
    const li = el("li");
    li.dataset.id = s.id;
    if (s.id === state.current) li.classList.add("selected");
    const top = el("div");
    top.append(el("span", "badge " + s.status, s.status), " ", el("span", "sid", s.id));
    li.append(top, el("span", "meta", s.backend + (s.image ? " · " + s.image : "") +
      (s.queue_position ? " · queued #" + s.queue_position : "") + " · active " + ago(s.last_activity)));
    if (s.error) li.append(el("span", "meta error", s.error));
    li.addEventListener("click", () => openSession(s.id));
    ul.append(li);
    if (s.id === state.current) showStatus(s);
  }
}

function ago(ts) {
  const t = Date.parse(ts);
  if (!t) return "–";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

function showStatus(s) {
  const b = $("sv-status");
  b.className = "badge " + s.status;
  b.textContent = s.status + (s.runtime_status ? " · " + s.runtime_status.replace("STATUS$", "") : "");
  $("sv-pause").disabled = s.status !== "RUNNING";
  $("sv-resume").disabled = s.status !== "PAUSED";
  $("sv-delete").disabled = s.status === "STOPPED";
  const stopped = s.status === "STOPPED" || s.status === "ERROR";
  $("sv-start").disabled = !stopped;
  $("cmd").disabled = $("run-btn").disabled = $("ctrlc-btn").disabled = stopped;
}

$("new-session").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("new-error").textContent = "";
  const body = { runtime: $("new-runtime").value };
  const image = $("new-image").value.trim();
  if (image) body.image = image;
  $("new-session-btn").disabled = true;
  try {
    const s = await api("POST", "/api/sessions", body);
    await refreshSessions();
    openSession(s.id);
  } catch (e) {
    $("new-error").textContent = e.message;
  } finally {
    $("new-session-btn").disabled = false;
  }
});

// ---- session view --------------------------------------------------------

function openSession(id) {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  state.current = id;
  state.lastId = -1;
  state.retry = 0;
  state.actions.clear();
  state.live.clear();
  $("log").textContent = "";
  $("sv-title").textContent = id;
  $("session-view").classList.remove("hidden");
  $("empty-view").classList.add("hidden");
  for (const li of $("sessions").children) li.classList.toggle("selected", li.dataset.id === id);
  // A link to this view: #/sessions/<id>
  if (location.hash !== "#/sessions/" + encodeURIComponent(id)) history.replaceState(null, "", "#/sessions/" + encodeURIComponent(id));
  connect();
  refreshSessions();
  $("cmd").focus();
}

function connect() {
  const id = state.current;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let url = proto + "//" + location.host + "/api/sessions/" + encodeURIComponent(id) + "/events/ws?after=" + state.lastId;
  // The UI shows runtime status changes, which are Corral's own events:
  // without corral_events the server sends OpenHands events only.
  url += "&corral_events=true";
  if (state.token) url += "&access_token=" + encodeURIComponent(state.token);
  const ws = new WebSocket(url);
  state.ws = ws;
  $("sv-conn").textContent = "connecting…";
  ws.onopen = () => { $("sv-conn").textContent = "live"; state.retry = 0; };
  ws.onmessage = (m) => {
    let f;
    try { f = JSON.parse(m.data); } catch (_) { return; }
    if (id !== state.current) return;
    if (f.type === "event") {
      if (f.id <= state.lastId) return; // never render twice
      state.lastId = f.id;
      render(f.event);
    } else if (f.type === "output") {
      liveOutput(f);
    } else if (f.type === "fell_behind") {
      $("sv-conn").textContent = "catching up…";
    } else if (f.type === "closed") {
      // The session's stream ended (it stopped): nothing more will come.
      state.ws = null;
      $("sv-conn").textContent = "ended";
    }
  };
  ws.onclose = () => {
    if (state.ws !== ws || id !== state.current) return;
    $("sv-conn").textContent = "reconnecting…";
    const delay = Math.min(5000, 200 * 2 ** state.retry++);
    setTimeout(() => { if (state.ws === ws && id === state.current) connect(); }, delay);
  };
}

function scrolledToBottom(log) {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}

function append(node) {
  const log = $("log");
  const stick = scrolledToBottom(log);
  log.append(node);
  if (stick) log.scrollTop = log.scrollHeight;
}

function head(kind, e) {
  const h = el("div", "head");
  h.append(el("span", "kind", kind), el("span", "", "#" + e.id + " · " + (e.source || "") + " · " + (e.timestamp || "").replace("T", " ").slice(0, 19)));
  return h;
}

function render(e) {
  if (e.action !== undefined) renderAction(e);
  else renderObservation(e);
}

function renderAction(e) {
  const a = e.args || {};
  const d = el("div", "ev action");
  d.append(head(e.action, e));
  if (a.thought) d.append(el("div", "thought", a.thought));
  switch (e.action) {
    case "run":
      d.append(el("div", "cmdline", (a.is_input ? "⌨ " : "$ ") + a.command));
      break;
    case "run_ipython":
      d.append(el("pre", "", a.code));
      break;
    case "read": case "write": case "edit":
      d.append(el("div", "cmdline", (a.command || e.action) + " " + a.path));
      if (e.action === "write" && a.content) d.append(el("pre", "", a.content));
      break;
    case "message":
      d.append(el("div", "", a.content));
      break;
    default:
      d.append(el("pre", "", JSON.stringify(a, null, 2)));
  }
  if (a.confirmation_state === "awaiting_confirmation") d.append(confirmBox(e.id));
  state.actions.set(e.id, d);
  append(d);
}

function confirmBox(eid) {
  const box = el("div", "confirm");
  const yes = el("button", "", "Confirm");
  const no = el("button", "danger", "Reject");
  const decide = async (verb) => {
    yes.disabled = no.disabled = true;
    try {
      await api("POST", "/api/sessions/" + encodeURIComponent(state.current) + "/actions/" + eid + "/" + verb);
      box.textContent = verb === "confirm" ? "confirmed" : "rejected";
    } catch (err) {
      yes.disabled = no.disabled = false;
      box.append(el("span", "error", err.message));
    }
  };
  yes.addEventListener("click", () => decide("confirm"));
  no.addEventListener("click", () => decide("reject"));
  box.append(el("span", "q", "Awaiting confirmation"), yes, no);
  return box;
}

function liveOutput(f) {
  const parent = state.actions.get(f.action_id);
  if (!parent || parent.dataset.answered) return;
  let pre = state.live.get(f.action_id);
  if (!pre) {
    pre = el("pre", "live", "");
    state.live.set(f.action_id, pre);
    parent.append(pre);
  }
  const log = $("log");
  const stick = scrolledToBottom(log);
  pre.textContent += f.data;
  if (stick) log.scrollTop = log.scrollHeight;
}

function renderObservation(e) {
  const x = e.extras || {};
  if (e.observation === "runtime_status") {
    const d = el("div", "ev status", "runtime " + (x.status || "").replace("STATUS$", "") + (e.content ? " — " + e.content : ""));
    append(d);
    return;
  }
  if (e.cause !== undefined && e.cause !== null) {
    const parent = state.actions.get(e.cause);
    if (parent) {
      parent.dataset.answered = "1";
      const pre = state.live.get(e.cause);
      if (pre) { pre.remove(); state.live.delete(e.cause); }
      const box = parent.querySelector(".confirm");
      if (box) box.remove();
    }
  }
  const failed = e.observation === "error" || (x.metadata && x.metadata.exit_code > 0) || e.success === false;
  const d = el("div", "ev obs" + (failed ? " failed" : "") + (e.observation === "error" ? " error" : ""));
  const h = head(e.observation, e);
  if (e.cause !== undefined && e.cause !== null) h.append(el("span", "", "↳ #" + e.cause));
  if (x.metadata && typeof x.metadata.exit_code === "number" && x.metadata.exit_code >= 0) {
    h.append(el("span", "exit" + (x.metadata.exit_code !== 0 ? " bad" : ""), "exit " + x.metadata.exit_code));
  }
  d.append(h);
  if (e.content) d.append(el("pre", "", e.content));
  append(d);
}

async function runCommand(command, isInput) {
  $("cmd-error").textContent = "";
  try {
    await api("POST", "/api/sessions/" + encodeURIComponent(state.current) + "/actions",
      { action: "run", args: { command, is_input: isInput } });
  } catch (e) {
    $("cmd-error").textContent = e.message;
  }
}

$("cmd-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const c = $("cmd").value;
  const isInput = $("cmd-input").checked;
  if (!c && !isInput) return;
  $("cmd").value = "";
  runCommand(c, isInput);
});
$("ctrlc-btn").addEventListener("click", () => runCommand("C-c", true));

async function control(verb) {
  $("cmd-error").textContent = "";
  try {
    if (verb === "delete") await api("DELETE", "/api/sessions/" + encodeURIComponent(state.current));
    else await api("POST", "/api/sessions/" + encodeURIComponent(state.current) + "/" + verb);
    // A started session has a live stream again: follow it from the last
    // event shown.
    if (verb === "start" && !state.ws) connect();
  } catch (e) {
    $("cmd-error").textContent = e.message;
  }
  refreshSessions();
}
$("sv-start").addEventListener("click", () => control("start"));
$("sv-pause").addEventListener("click", () => control("pause"));
$("sv-resume").addEventListener("click", () => control("resume"));
$("sv-delete").addEventListener("click", () => control("delete"));

// ---- metrics & token -----------------------------------------------------

async function refreshMetrics() {
  let m;
  try { m = await api("GET", "/api/metrics/summary"); } catch (_) { return; }
  $("m-sessions").textContent = m.sessions;
  $("m-rate").textContent = m.actions_per_second.toFixed(1);
  $("m-p50").textContent = fmtMs(m.p50_ms);
  $("m-p99").textContent = fmtMs(m.p99_ms);
}

function fmtMs(v) {
  if (!v) return "–";
  return v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(0) + " ms" : (v / 1000).toFixed(1) + " s";
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem("corral.token", state.token);
  $("token-form").classList.add("hidden");
  refreshSessions();
  refreshMetrics();
  if (state.current) openSession(state.current);
});

refreshSessions();
refreshMetrics();
{
  const m = location.hash.match(/^#\/sessions\/([^/]+)$/);
  if (m) openSession(decodeURIComponent(m[1]));
}
setInterval(refreshSessions, 2000);
setInterval(refreshMetrics, 2000);
