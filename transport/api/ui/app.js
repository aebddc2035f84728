// Corral web UI: plain JavaScript, no dependencies, talks only to the server
// that served it. Untrusted text (commands, output, file names) is always
// set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_KEY = "corral.history";
const HISTORY_MAX = 500;

const state = {
  token: localStorage.getItem("corral.token") || "",
  current: null,     // selected session id
  session: null,     // its last Session object
  ws: null,
  lastId: -1,        // last event id rendered for the current session
  retry: 0,
  actions: new Map(), // action id -> its element in the event log
  running: new Set(), // run actions without an observation yet
  waiting: false,     // the last command timed out and may want input
  term: null,
  history: loadHistory(),
  hIndex: -1,         // position in history while browsing with Up/Down
  draft: "",
  files: { dir: "", root: null, open: null, content: "" },
  py: new Map(),      // run_ipython action id -> its cell element
  logs: null,         // AbortController of the Logs tab's stream
  cluster: null,      // GET /api/cluster's answer; null on a single node
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function sessionPath(suffix) {
  return "/api/sessions/" + encodeURIComponent(state.current) + (suffix || "");
}

function authHeaders() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function api(method, path, body, raw) {
  const headers = authHeaders();
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const res = await fetch(path, { method, headers, body: payload });
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (res.status === 401) $("token-form").classList.remove("hidden");
  if (!res.ok) {
    const msg = data && data.error ? data.error.message : res.status + " " + res.statusText;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return data;
}

function showError(msg) { $("cmd-error").textContent = msg || ""; }

// ---- sessions list -------------------------------------------------------

async function refreshSessions() {
  let data;
  try { data = await api("GET", "/api/sessions"); } catch (_) { return; }
  const ul = $("sessions");
  ul.textContent = "";
  for (const s of data.sessions.slice().reverse()) {
    const li = el("li");
    li.dataset.id = s.id;
    li.tabIndex = 0;
    if (s.id === state.current) li.classList.add("selected");
    const top = el("div");
    top.append(el("span", "badge " + s.status, s.status), " ", el("span", "sid", s.id));
    if (state.cluster && s.node) top.append(" ", el("span", "meta node", "@" + s.node));
    const where = [state.cluster ? "" : s.node, s.backend, s.image].filter(Boolean).join(" · ");
    li.append(top, el("span", "meta", where + (s.queue_position ? " · queued #" + s.queue_position : "") + " · active " + ago(s.last_activity)));
    if (s.forked_from) li.append(el("span", "meta", "forked from " + s.forked_from.session + " @ " + s.forked_from.event_id));
    if (s.error) li.append(el("span", "meta error", s.error));
    li.addEventListener("click", () => openSession(s.id));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openSession(s.id); });
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
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}

function showStatus(s) {
  state.session = s;
  const b = $("sv-status");
  b.className = "badge " + s.status;
  b.textContent = s.status + (s.runtime_status ? " · " + s.runtime_status.replace("STATUS$", "") : "");
  $("sv-pause").disabled = s.status !== "RUNNING";
  $("sv-resume").disabled = s.status !== "PAUSED";
  $("sv-stop").disabled = s.status === "STOPPED" || s.status === "ERROR";
  const stopped = s.status === "STOPPED" || s.status === "ERROR";
  $("sv-start").disabled = !stopped;
  for (const id of ["cmd", "run-btn", "ctrlc-btn", "ctrld-btn", "ctrlz-btn", "py-run", "fb-upload", "fb-save", "fb-edit"]) $(id).disabled = stopped;
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

$("nav-toggle").addEventListener("click", (ev) => {
  ev.stopPropagation();
  const open = document.body.classList.toggle("nav-open");
  $("nav-toggle").setAttribute("aria-expanded", String(open));
});
// On a narrow window the list is a drawer: a click beside it closes it.
document.querySelector("main").addEventListener("click", (ev) => {
  if (document.body.classList.contains("nav-open") && !$("sidebar").contains(ev.target)) {
    document.body.classList.remove("nav-open");
    $("nav-toggle").setAttribute("aria-expanded", "false");
  }
});

// ---- session view --------------------------------------------------------

function openSession(id) {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  state.current = id;
  state.session = null;
  state.lastId = -1;
  state.retry = 0;
  state.actions.clear();
  state.running.clear();
  state.py.clear();
  state.files = { dir: "", root: null, cwd: null, open: null, content: "" };
  setWaiting(false);
  state.term.reset();
  $("log").textContent = "";
  if (currentTab() === "logs") loadLogs();
  $("py-cells").textContent = "";
  $("fb-view").classList.add("hidden");
  $("delete-confirm").classList.add("hidden");
  showError("");
  $("sv-title").textContent = id;
  $("session-view").classList.remove("hidden");
  $("empty-view").classList.add("hidden");
  document.body.classList.remove("nav-open");
  document.body.classList.add("has-session");
  for (const li of $("sessions").children) li.classList.toggle("selected", li.dataset.id === id);
  // A link to this view: #/sessions/<id>
  if (location.hash !== "#/sessions/" + encodeURIComponent(id)) history.replaceState(null, "", "#/sessions/" + encodeURIComponent(id));
  connect();
  refreshSessions();
  if (currentTab() === "files") listDir(state.files.dir);
  $("cmd").focus();
}

function closeSession() {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  stopLogs();
  state.current = null;
  $("session-view").classList.add("hidden");
  $("empty-view").classList.remove("hidden");
  document.body.classList.remove("has-session");
  history.replaceState(null, "", location.pathname);
}

function connect() {
  const id = state.current;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let url = proto + "//" + location.host + sessionPath("/events/ws") + "?after=" + state.lastId;
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

function render(e) {
  if (e.action !== undefined) {
    renderAction(e);
    if (e.action === "run") termAction(e);
    if (e.action === "run_ipython") pyAction(e);
  } else {
    renderObservation(e);
    if (e.cause !== undefined && e.cause !== null) {
      if (state.term.blocks.has(e.cause) || e.observation === "run") termObservation(e);
      if (state.py.has(e.cause)) pyObservation(e);
    }
  }
}

// ---- terminal --------------------------------------------------------------

function termAction(e) {
  const a = e.args || {};
  state.term.block(e.id, a.command || "", !!a.is_input);
  state.running.add(e.id);
  updatePrompt();
}

function liveOutput(f) {
  const b = state.term.blocks.get(f.action_id);
  if (b) b.output(f.seq, f.data);
}

function termObservation(e) {
  let b = state.term.blocks.get(e.cause);
  if (!b) {
    const x = e.extras || {};
    b = state.term.block(e.cause, x.command || "", false);
  }
  b.finish(e);
  state.running.delete(e.cause);
  const md = (e.extras || {}).metadata || {};
  if (e.observation === "run") setWaiting(md.exit_code === -1);
  if (md.working_dir) state.files.cwd = md.working_dir; // the last resort of fileRoot
  updatePrompt();
}

function setWaiting(on) {
  state.waiting = on;
  $("cmd-input").checked = on;
  updatePrompt();
}

function updatePrompt() {
  const input = $("cmd-input").checked;
  const p = $("prompt");
  p.textContent = input ? "⌨" : "$";
  p.classList.toggle("busy", state.running.size > 0);
  $("cmd").placeholder = input ? "input to the running command (is_input) · Enter sends" : "command · ↑↓ history · Ctrl-C interrupts";
}
$("cmd-input").addEventListener("change", updatePrompt);

async function runCommand(command, isInput) {
  showError("");
  try {
    await api("POST", sessionPath("/actions"), { action: "run", args: { command, is_input: isInput } });
  } catch (e) {
    showError(e.message);
  }
}

// interrupt stops the running command now, past the action queue. A
// command that timed out has no action in flight any more: it gets
// OpenHands' own C-c input, which answers with an observation.
async function interrupt() {
  showError("");
  if (state.running.size === 0 && state.waiting) return runCommand("C-c", true);
  try {
    await api("POST", sessionPath("/interrupt"));
  } catch (e) {
    showError("Ctrl-C: " + e.message);
  }
}

$("cmd-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const c = $("cmd").value;
  const isInput = $("cmd-input").checked;
  if (!c && !isInput) return;
  $("cmd").value = "";
  if (c && !isInput) remember(c);
  state.hIndex = -1;
  runCommand(c, isInput);
});
$("ctrlc-btn").addEventListener("click", () => { interrupt(); $("cmd").focus(); });
$("ctrld-btn").addEventListener("click", () => runCommand("C-d", true));
$("ctrlz-btn").addEventListener("click", () => runCommand("C-z", true));

$("cmd").addEventListener("keydown", (ev) => {
  const input = ev.target;
  if (ev.ctrlKey && !ev.altKey && !ev.metaKey) {
    const key = ev.key.toLowerCase();
    // Ctrl-C copies a selection, as everywhere; without one it interrupts.
    if (key === "c" && input.selectionStart === input.selectionEnd) { ev.preventDefault(); interrupt(); return; }
    if (key === "d" && input.value === "") { ev.preventDefault(); runCommand("C-d", true); return; }
    if (key === "z") { ev.preventDefault(); runCommand("C-z", true); return; }
    if (key === "l") { ev.preventDefault(); state.term.reset(); return; }
  }
  if (ev.key === "ArrowUp" || ev.key === "ArrowDown") {
    if (browseHistory(ev.key === "ArrowUp" ? 1 : -1)) ev.preventDefault();
  }
});

// Ctrl-C on the output interrupts too, unless text is selected (copy);
// typing on the output types on the command line.
$("term").addEventListener("keydown", (ev) => {
  if (ev.ctrlKey && ev.key.toLowerCase() === "c" && window.getSelection().isCollapsed) { ev.preventDefault(); interrupt(); return; }
  if (ev.key.length === 1 && !ev.ctrlKey && !ev.altKey && !ev.metaKey) $("cmd").focus();
});
// A click that selects nothing puts the cursor on the command line.
$("term").addEventListener("mouseup", () => { if (window.getSelection().isCollapsed) $("cmd").focus({ preventScroll: true }); });

function loadHistory() {
  try { const h = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); return Array.isArray(h) ? h : []; } catch (_) { return []; }
}

function remember(cmd) {
  const h = state.history;
  if (h[h.length - 1] !== cmd) h.push(cmd);
  if (h.length > HISTORY_MAX) h.splice(0, h.length - HISTORY_MAX);
  try { localStorage.setItem(HISTORY_KEY, JSON.stringify(h)); } catch (_) { /* full: history stays in memory */ }
}

// browseHistory moves back (+1) or forward (-1) in the command history.
function browseHistory(dir) {
  const h = state.history;
  if (h.length === 0) return false;
  if (state.hIndex === -1) {
    if (dir < 0) return false;
    state.draft = $("cmd").value;
  }
  const next = Math.min(h.length - 1, state.hIndex + dir);
  state.hIndex = next;
  const v = next < 0 ? state.draft : h[h.length - 1 - next];
  $("cmd").value = v;
  $("cmd").setSelectionRange(v.length, v.length);
  return true;
}

// ---- event log ------------------------------------------------------------

// The log keeps its last LOG_MAX entries and follows its tail unless the
// reader scrolled up; appending never reads the layout (a replay of
// thousands of events stays one layout per frame).
const LOG_MAX = 3000;
const logView = { follow: true, raf: 0 };
$("log").addEventListener("scroll", () => {
  const log = $("log");
  logView.follow = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}, { passive: true });

function append(node) {
  const log = $("log");
  log.append(node);
  while (log.childElementCount > LOG_MAX) {
    const old = log.firstElementChild;
    if (old.eventId !== undefined) state.actions.delete(old.eventId);
    old.remove();
  }
  if (logView.follow && !logView.raf) {
    logView.raf = requestAnimationFrame(() => { logView.raf = 0; log.scrollTop = log.scrollHeight; });
  }
}

function head(kind, e) {
  const h = el("div", "head");
  h.append(el("span", "kind", kind), el("span", "", "#" + e.id + " · " + (e.source || "") + " · " + (e.timestamp || "").replace("T", " ").slice(0, 19)));
  return h;
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
  d.eventId = e.id;
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
      await api("POST", sessionPath("/actions/" + eid + "/" + verb));
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

function renderObservation(e) {
  const x = e.extras || {};
  if (e.observation === "runtime_status") {
    append(el("div", "ev status", "runtime " + (x.status || "").replace("STATUS$", "") + (e.content ? " — " + e.content : "")));
    return;
  }
  if (e.cause !== undefined && e.cause !== null) {
    const parent = state.actions.get(e.cause);
    if (parent) {
      parent.dataset.answered = "1";
      const box = parent.querySelector(".confirm");
      if (box) box.remove();
    }
  }
  const md = x.metadata || {};
  const code = typeof md.exit_code === "number" ? md.exit_code : null;
  const failed = e.observation === "error" || (code !== null && code !== 0) || e.success === false;
  const d = el("div", "ev obs" + (failed ? " failed" : "") + (e.observation === "error" ? " error" : ""));
  const h = head(e.observation, e);
  if (e.cause !== undefined && e.cause !== null) h.append(el("span", "", "↳ #" + e.cause));
  if (code !== null) h.append(el("span", "exit" + (code === 0 ? "" : code === -1 ? " wait" : " bad"), code === -1 ? "no exit code (still running)" : "exit " + code));
  if (x.error_id) h.append(el("span", "exit bad", x.error_id));
  d.append(h);
  // Every observation says something: its message, its output, and the
  // metadata OpenHands appends (timeouts, interrupts, exit codes).
  if (e.message && e.message !== e.content) d.append(el("div", "msg", e.message));
  if (md.prefix && md.prefix.trim()) d.append(el("div", "suffix", md.prefix.trim()));
  if (e.content) d.append(el("pre", "content", e.content));
  if (md.suffix && md.suffix.trim()) d.append(el("div", "suffix", md.suffix.trim()));
  // A browse observation carries the page's screenshot (base64 PNG).
  if (e.observation === "browse" && typeof x.screenshot === "string" && x.screenshot) {
    const img = el("img", "shot");
    img.alt = "screenshot of " + (x.url || "the page");
    img.src = x.screenshot.startsWith("data:") ? x.screenshot : "data:image/png;base64," + x.screenshot;
    d.append(img);
  }
  append(d);
}

// ---- Python cells -----------------------------------------------------------

function pyAction(e) {
  const cell = el("div", "py-cell");
  cell.append(el("div", "py-in-label", "In [#" + e.id + "]"), el("pre", "py-in", (e.args || {}).code || ""));
  state.py.set(e.id, cell);
  const box = $("py-cells");
  box.append(cell);
  box.scrollTop = box.scrollHeight;
}

function pyObservation(e) {
  const cell = state.py.get(e.cause);
  const failed = e.observation === "error" || e.success === false;
  cell.append(el("pre", "py-out" + (failed ? " bad" : ""), e.content || e.message || ""));
  const box = $("py-cells");
  box.scrollTop = box.scrollHeight;
}

$("py-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const code = $("py-code").value;
  if (!code.trim()) return;
  showError("");
  try {
    await api("POST", sessionPath("/actions"), { action: "run_ipython", args: { code } });
    $("py-code").value = "";
  } catch (e) {
    showError(e.message);
  }
});
$("py-code").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.shiftKey || ev.metaKey)) {
    ev.preventDefault();
    $("py-form").requestSubmit();
  }
});

// ---- files -----------------------------------------------------------------

// fileRoot is the absolute path of the sandbox's working directory (the
// root the listing starts at), needed by upload and download.
function fileRoot() {
  const s = state.session;
  if (s && s.backend === "docker") return "/workspace"; // its workspace field is the host's side
  if (s && s.workspace && s.workspace.startsWith("/")) return s.workspace;
  return state.files.root || state.files.cwd;
}

function absPath(rel) {
  const root = fileRoot();
  if (!root) return null;
  return rel ? root.replace(/\/$/, "") + "/" + rel : root;
}

async function listDir(dir) {
  state.files.dir = dir;
  renderCrumbs(dir);
  const ul = $("fb-list");
  let data;
  try {
    const root = fileRoot();
    const p = root ? absPath(dir) : dir;
    data = await api("GET", sessionPath("/files") + "?path=" + encodeURIComponent(p));
  } catch (e) {
    ul.textContent = "";
    ul.append(el("li", "error", e.message));
    return;
  }
  if (state.files.dir !== dir) return; // another directory was opened meanwhile
  ul.textContent = "";
  if (dir) ul.append(fileRow("../", () => listDir(parentOf(dir)), "dir"));
  for (const name of data.files) {
    const isDir = name.endsWith("/");
    const rel = (dir ? dir + "/" : "") + name.replace(/\/$/, "");
    ul.append(fileRow(name, () => (isDir ? listDir(rel) : openFile(rel)), isDir ? "dir" : "file", isDir ? null : rel));
  }
  if (data.files.length === 0) ul.append(el("li", "muted", "(empty)"));
}

function parentOf(dir) {
  const i = dir.lastIndexOf("/");
  return i < 0 ? "" : dir.slice(0, i);
}

function fileRow(name, open, kind, rel) {
  const li = el("li", "fb-row " + kind);
  const b = el("button", "fb-open", (kind === "dir" ? "▸ " : "  ") + name);
  b.type = "button";
  b.dataset.name = name;
  b.addEventListener("click", open);
  li.append(b);
  if (rel) {
    const dl = el("button", "fb-dl secondary", "⬇");
    dl.type = "button";
    dl.title = "download " + name;
    dl.setAttribute("aria-label", "download " + name);
    dl.addEventListener("click", () => download(rel));
    li.append(dl);
  }
  return li;
}

function renderCrumbs(dir) {
  const nav = $("fb-crumbs");
  nav.textContent = "";
  const root = el("button", "crumb", "workspace");
  root.type = "button";
  root.addEventListener("click", () => listDir(""));
  nav.append(root);
  let acc = "";
  for (const part of dir ? dir.split("/") : []) {
    acc = acc ? acc + "/" + part : part;
    const to = acc;
    const b = el("button", "crumb", part);
    b.type = "button";
    b.addEventListener("click", () => listDir(to));
    nav.append(el("span", "sep", "/"), b);
  }
}

// action runs one action and waits for its observation.
async function action(body) {
  return api("POST", sessionPath("/actions?wait=true"), body);
}

function fileStatus(msg, bad) {
  const p = $("fb-status");
  p.textContent = msg;
  p.classList.toggle("error", !!bad);
}

async function openFile(rel) {
  const path = absPath(rel) || rel;
  state.files.open = rel;
  $("fb-view").classList.remove("hidden");
  $("fb-name").textContent = rel;
  setEditing(false);
  $("fb-code").textContent = "";
  fileStatus("reading…");
  let obs;
  try {
    obs = await action({ action: "read", args: { path } });
  } catch (e) {
    fileStatus(e.message, true);
    return;
  }
  if (state.files.open !== rel) return;
  if (!obs || obs.observation !== "read") {
    fileStatus(obs ? obs.content || obs.message : "no observation", true);
    return;
  }
  // A relative read tells the absolute path: the root of the listing.
  const got = (obs.extras || {}).path || "";
  if (!state.files.root && got.endsWith("/" + rel)) state.files.root = got.slice(0, got.length - rel.length - 1);
  state.files.content = obs.content || "";
  showCode(state.files.content);
  fileStatus(lineCount(state.files.content) + " lines");
}

function lineCount(text) {
  if (!text) return 0;
  let n = text.split("\n").length;
  if (text.endsWith("\n")) n--;
  return n;
}

// showCode shows text with line numbers: a gutter and the text side by
// side, both plain text.
function showCode(text) {
  const box = $("fb-code");
  box.textContent = "";
  const n = Math.max(1, lineCount(text));
  const nums = new Array(n);
  for (let i = 0; i < n; i++) nums[i] = i + 1;
  const gutter = el("pre", "ln", nums.join("\n"));
  gutter.setAttribute("aria-hidden", "true");
  box.append(gutter, el("pre", "src", text.endsWith("\n") ? text.slice(0, -1) : text));
}

function setEditing(on) {
  $("fb-code").classList.toggle("hidden", on);
  $("fb-editor").classList.toggle("hidden", !on);
  $("fb-edit").classList.toggle("hidden", on);
  $("fb-save").classList.toggle("hidden", !on);
  $("fb-cancel").classList.toggle("hidden", !on);
}

$("fb-edit").addEventListener("click", () => {
  $("fb-editor").value = state.files.content;
  setEditing(true);
  $("fb-editor").focus();
});
$("fb-cancel").addEventListener("click", () => setEditing(false));
$("fb-close").addEventListener("click", () => { state.files.open = null; $("fb-view").classList.add("hidden"); });
$("fb-save").addEventListener("click", saveFile);
$("fb-editor").addEventListener("keydown", (ev) => {
  if (ev.key === "s" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); saveFile(); }
});

async function saveFile() {
  const rel = state.files.open;
  if (!rel) return;
  const content = $("fb-editor").value;
  fileStatus("saving…");
  $("fb-save").disabled = true;
  try {
    // OpenHands' write ends every line, the last one too: "a\n" would be
    // saved as "a\n\n". The text is sent without its final line end.
    const body = content.endsWith("\n") ? content.slice(0, -1) : content;
    const obs = await action({ action: "write", args: { path: absPath(rel) || rel, content: body } });
    if (!obs || obs.observation !== "write") {
      fileStatus("not saved: " + (obs ? obs.content || obs.message : "no observation"), true);
      return;
    }
    state.files.content = body + "\n";
    showCode(state.files.content);
    setEditing(false);
    fileStatus("saved · " + lineCount(state.files.content) + " lines");
  } catch (e) {
    fileStatus("not saved: " + e.message, true);
  } finally {
    $("fb-save").disabled = false;
  }
}

$("fb-download").addEventListener("click", () => { if (state.files.open) download(state.files.open); });

// download fetches a file (or a directory as a zip) with the token and
// hands it to the browser as a file.
async function download(rel) {
  const path = absPath(rel);
  if (!path) { showError("the sandbox's working directory is not known yet: run a command first"); return; }
  showError("");
  try {
    const res = await fetch(sessionPath("/files/download") + "?path=" + encodeURIComponent(path), { headers: authHeaders() });
    if (!res.ok) {
      let msg = res.status + " " + res.statusText;
      try { msg = (await res.json()).error.message; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    const blob = await res.blob();
    const cd = res.headers.get("Content-Disposition") || "";
    const m = cd.match(/filename="?([^";]+)"?/);
    const a = el("a");
    a.href = URL.createObjectURL(blob);
    a.download = m ? m[1] : (rel.split("/").pop() || "workspace");
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    showError("download " + rel + ": " + e.message);
  }
}

$("fb-upload").addEventListener("change", async (ev) => {
  const files = [...ev.target.files];
  ev.target.value = "";
  if (files.length === 0) return;
  const dest = absPath(state.files.dir);
  if (!dest) { showError("the sandbox's working directory is not known yet: run a command first"); return; }
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  showError("");
  try {
    await api("POST", sessionPath("/files") + "?destination=" + encodeURIComponent(dest), undefined, form);
    listDir(state.files.dir);
  } catch (e) {
    showError("upload: " + e.message);
  }
});
$("fb-refresh").addEventListener("click", () => listDir(state.files.dir));
$("fb-zip").addEventListener("click", () => download(state.files.dir));

// ---- sandbox logs ----------------------------------------------------------

const LOGS_TAIL = 1000;         // lines fetched when the tab opens
const LOGS_MAX_CHARS = 2 << 20; // the view keeps the last ~2 MiB

// stopLogs ends the log stream the tab reads (leaving the tab, another
// session): the server stops reading the sandbox's log with it.
function stopLogs() {
  if (state.logs) { state.logs.abort(); state.logs = null; }
}

// loadLogs reads the last LOGS_TAIL lines of the sandbox's log and, with
// Follow, keeps appending lines until the sandbox stops (the server's last
// line then says so). Text is appended as text nodes, never parsed.
async function loadLogs() {
  stopLogs();
  const out = $("logs-out"), status = $("logs-status");
  out.textContent = "";
  if (!state.current) return;
  const follow = $("logs-follow").checked;
  const ctl = new AbortController();
  state.logs = ctl;
  status.textContent = follow ? "following…" : "loading…";
  try {
    const res = await fetch(sessionPath("/logs?tail=" + LOGS_TAIL + (follow ? "&follow=true" : "")), { headers: authHeaders(), signal: ctl.signal });
    if (!res.ok) {
      let msg = res.status + " " + res.statusText;
      try { const d = await res.json(); if (d && d.error) msg = d.error.message; } catch (_) { /* not JSON */ }
      if (res.status === 401) $("token-form").classList.remove("hidden");
      status.textContent = msg;
      return;
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      appendLog(out, dec.decode(value, { stream: true }));
    }
    if (state.logs === ctl) status.textContent = follow ? "ended" : "";
  } catch (e) {
    if (e.name !== "AbortError") status.textContent = "log stream failed: " + e.message;
  } finally {
    if (state.logs === ctl) state.logs = null;
  }
}

function appendLog(out, text) {
  const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
  out.appendChild(document.createTextNode(text));
  if (out.textContent.length > LOGS_MAX_CHARS) {
    const t = out.textContent;
    out.textContent = t.slice(t.indexOf("\n", t.length - LOGS_MAX_CHARS / 2) + 1);
  }
  if (atEnd) out.scrollTop = out.scrollHeight;
}

$("logs-reload").addEventListener("click", loadLogs);
$("logs-follow").addEventListener("change", loadLogs);

// ---- tabs & session controls ----------------------------------------------

function currentTab() {
  const t = document.querySelector(".tab.active");
  return t ? t.dataset.tab : "term";
}

function showTab(name) {
  for (const t of document.querySelectorAll(".tab")) {
    const on = t.dataset.tab === name;
    t.classList.toggle("active", on);
    t.setAttribute("aria-selected", String(on));
  }
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("hidden", p.id !== "tab-" + name);
  if (name === "term") { state.term.flush(); $("cmd").focus(); }
  if (name === "files") listDir(state.files.dir);
  if (name === "py") $("py-code").focus();
  if (name === "events") { const log = $("log"); log.scrollTop = log.scrollHeight; }
  if (name === "logs") loadLogs(); else stopLogs();
  if (name === "ports") loadPorts();
}

// loadPorts lists the sandbox's listening TCP ports as links to their
// preview URLs (the token rides in ?access_token=, as a link sends no header).
async function loadPorts() {
  const ul = $("ports-list");
  $("ports-status").textContent = "loading…";
  let data;
  try {
    data = await api("GET", sessionPath("/ports"));
  } catch (e) {
    $("ports-status").textContent = e.message;
    return;
  }
  ul.replaceChildren();
  for (const p of data.ports) {
    const li = el("li");
    const a = el("a", "", p.port + " (" + p.address + ")");
    a.href = p.url + (state.token ? "?access_token=" + encodeURIComponent(state.token) : "");
    a.target = "_blank";
    a.rel = "noopener";
    li.append(a);
    ul.append(li);
  }
  $("ports-status").textContent = data.ports.length === 0 ? "nothing listens in the sandbox" : data.ports.length + " listening";
}
$("ports-reload").addEventListener("click", loadPorts);
for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showTab(t.dataset.tab));

async function control(verb) {
  showError("");
  try {
    if (verb === "stop") await api("DELETE", sessionPath());
    else await api("POST", sessionPath("/" + verb));
    // A started session has a live stream again: follow it from the last
    // event shown.
    if (verb === "start" && !state.ws) connect();
  } catch (e) {
    showError(e.message);
  }
  refreshSessions();
}
$("sv-start").addEventListener("click", () => control("start"));
$("sv-pause").addEventListener("click", () => control("pause"));
$("sv-resume").addEventListener("click", () => control("resume"));
$("sv-stop").addEventListener("click", () => control("stop"));
$("sv-delete").addEventListener("click", () => $("delete-confirm").classList.remove("hidden"));
$("delete-no").addEventListener("click", () => $("delete-confirm").classList.add("hidden"));
$("delete-yes").addEventListener("click", async () => {
  showError("");
  try {
    await api("DELETE", sessionPath("?purge=true"));
    $("delete-confirm").classList.add("hidden");
    closeSession();
  } catch (e) {
    showError(e.message);
  }
  refreshSessions();
});

// ---- metrics & token -----------------------------------------------------

async function refreshMetrics() {
  let m;
  try { m = await api("GET", "/api/metrics/summary"); } catch (_) { return; }
  $("m-sessions").textContent = m.sessions;
  $("m-rate").textContent = m.actions_per_second.toFixed(1);
  $("m-p50").textContent = fmtMs(m.p50_ms);
  $("m-p99").textContent = fmtMs(m.p99_ms);
}

// The cluster card: shown only when the server is a cluster member (a
// single node answers 404 and the card stays hidden).
async function refreshCluster() {
  let c;
  try { c = await api("GET", "/api/cluster"); } catch (_) { state.cluster = null; $("cluster").classList.add("hidden"); return; }
  state.cluster = c;
  $("cluster-self").textContent = "this node: " + c.self;
  const body = $("cluster-members");
  body.textContent = "";
  for (const m of c.members) {
    const tr = el("tr", m.id === c.self ? "self" : "");
    tr.dataset.id = m.id;
    const api = el("td", "api", m.api.replace(/^https?:\/\//, ""));
    api.title = m.api;
    tr.append(el("td", "id", m.id), api, el("td", m.status, m.status), el("td", "n", String(m.sessions)));
    body.append(tr);
  }
  $("cluster").classList.remove("hidden");
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

state.term = new window.CorralTerm.Term($("term"), 5000);
refreshCluster().then(refreshSessions);
refreshMetrics();
{
  const m = location.hash.match(/^#\/sessions\/([^/]+)$/);
  if (m) openSession(decodeURIComponent(m[1]));
}
setInterval(refreshSessions, 2000);
setInterval(refreshMetrics, 2000);
setInterval(refreshCluster, 5000);
