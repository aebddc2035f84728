// Corral terminal view: a small renderer of command output as text in the
// page (selectable, found by the browser's find, read by screen readers).
//
// Output arrives in WebSocket frames of any size and rate. Frames are only
// queued when they arrive; rendering happens at most once per animation
// frame, and each render is bounded: a burst longer than the scrollback is
// cut to its tail before anything touches the DOM, and the oldest lines are
// dropped once the terminal holds more than `cap` lines. So `seq 1 300000`
// costs a few string scans, not 300000 DOM nodes.
"use strict";

const PS1_BEGIN = "###PS1JSON###";
const PS1_END = "###PS1END###";
const PS1_MARK = "\n" + PS1_BEGIN;
// A PS1 block that never ends is not one: past this size it is shown.
const PS1_MAX = 64 << 10;
// The line being written is re-rendered each frame; past this it is
// committed as it is.
const LINE_MAX = 16 << 10;

// Tokens of the output stream: CSI sequences, OSC strings, other escapes,
// line ends and control characters. Everything between them is text.
const TOKEN_RE = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()*+][0-9A-Za-z]|\x1b[^[\]()*+]|\r\n|[\n\r\b\t]|[\x00-\x08\x0b-\x1f\x7f]/g;
// An escape sequence cut at the end of a frame: ESC, a CSI without its
// final byte, a charset designation without its charset, an OSC without
// its terminator (or with only the ESC of ESC \).
const PARTIAL_ESC_RE = /\x1b(?:\[[0-9;?]*|[()*+]|\][^\x07\x1b]*\x1b?)?$/;

// Strips OpenHands' PS1 protocol blocks (`\n###PS1JSON###{...}###PS1END###\n`)
// from a stream that may cut them anywhere; hold() keeps what may be the
// start of one until the next piece (or the end) decides.
class PS1Filter {
  constructor() { this.carry = ""; this.atStart = true; this.dropNL = false; }

  push(text) {
    let s = this.carry + text;
    this.carry = "";
    if (this.dropNL && s) {
      // The line end that closes a block came in the next piece.
      if (s.startsWith("\r\n")) s = s.slice(2); else if (s[0] === "\n") s = s.slice(1);
      this.dropNL = false;
    }
    let out = "";
    for (;;) {
      if (this.atStart && s.length < PS1_BEGIN.length && PS1_BEGIN.startsWith(s)) {
        this.carry = s; // a block may open the output (a command that prints nothing)
        return out;
      }
      let i = s.indexOf(PS1_MARK);
      let skip = PS1_MARK.length;
      if (this.atStart && s.startsWith(PS1_BEGIN)) { i = 0; skip = PS1_BEGIN.length; }
      if (i < 0) break;
      const j = s.indexOf(PS1_END, i + skip);
      if (j < 0) {
        if (s.length - i > PS1_MAX) break; // not a PS1 block: show it
        out += s.slice(0, i);
        this.carry = s.slice(i);
        this.atStart = this.atStart && out === "";
        return out;
      }
      out += s.slice(0, i);
      let k = j + PS1_END.length;
      if (s.startsWith("\r\n", k)) k += 2; else if (s[k] === "\n") k += 1;
      else if (k === s.length) this.dropNL = true;
      s = s.slice(k);
      this.atStart = this.atStart && out === "";
    }
    // Hold a tail that may be the beginning of a block.
    for (let n = Math.min(PS1_MARK.length - 1, s.length); n > 0; n--) {
      if (PS1_MARK.startsWith(s.slice(s.length - n))) {
        this.carry = s.slice(s.length - n);
        s = s.slice(0, s.length - n);
        break;
      }
    }
    out += s;
    if (out) this.atStart = false;
    return out;
  }

  // end returns what is held once the stream has ended: a started block
  // without its end is dropped, a lone prefix is text.
  end() {
    const c = this.carry;
    this.carry = "";
    return c.includes(PS1_BEGIN) ? "" : c;
  }
}

// SGR state -> a style key, the class names and inline colours of a span.
const PALETTE16 = ["#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
  "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"];

function color256(n) {
  if (n < 16) return PALETTE16[n];
  if (n < 232) {
    n -= 16;
    const v = (x) => (x === 0 ? 0 : 55 + x * 40);
    return "rgb(" + v(Math.floor(n / 36)) + "," + v(Math.floor(n / 6) % 6) + "," + v(n % 6) + ")";
  }
  const g = 8 + (n - 232) * 10;
  return "rgb(" + g + "," + g + "," + g + ")";
}

class Style {
  constructor() { this.reset(); }
  reset() { this.fg = null; this.bg = null; this.bold = false; this.dim = false; this.italic = false; this.under = false; this.inverse = false; this.key = ""; }
  // apply reads one SGR parameter list ("1;31", "38;5;208", "").
  apply(params) {
    const p = params === "" ? [0] : params.split(";").map((x) => (x === "" ? 0 : +x));
    for (let i = 0; i < p.length; i++) {
      const n = p[i];
      if (n === 0) this.reset();
      else if (n === 1) this.bold = true;
      else if (n === 2) this.dim = true;
      else if (n === 3) this.italic = true;
      else if (n === 4) this.under = true;
      else if (n === 7) this.inverse = true;
      else if (n === 22) this.bold = this.dim = false;
      else if (n === 23) this.italic = false;
      else if (n === 24) this.under = false;
      else if (n === 27) this.inverse = false;
      else if (n >= 30 && n <= 37) this.fg = PALETTE16[n - 30];
      else if (n >= 90 && n <= 97) this.fg = PALETTE16[n - 82];
      else if (n === 39) this.fg = null;
      else if (n >= 40 && n <= 47) this.bg = PALETTE16[n - 40];
      else if (n >= 100 && n <= 107) this.bg = PALETTE16[n - 92];
      else if (n === 49) this.bg = null;
      else if ((n === 38 || n === 48) && p[i + 1] === 5 && i + 2 < p.length) {
        this[n === 38 ? "fg" : "bg"] = color256(p[i + 2] & 255);
        i += 2;
      } else if ((n === 38 || n === 48) && p[i + 1] === 2 && i + 4 < p.length) {
        this[n === 38 ? "fg" : "bg"] = "rgb(" + (p[i + 2] & 255) + "," + (p[i + 3] & 255) + "," + (p[i + 4] & 255) + ")";
        i += 4;
      }
    }
    this.key = [this.fg, this.bg, this.bold, this.dim, this.italic, this.under, this.inverse].join("|");
    if (this.key === "||false|false|false|false|false") this.key = "";
  }
  // snapshot is what a text segment keeps (styles change after it).
  snapshot() {
    if (this.key === "") return null;
    let fg = this.fg, bg = this.bg;
    if (this.inverse) { fg = this.bg || "var(--term-bg)"; bg = this.fg || "var(--term-fg)"; }
    const cls = (this.bold ? " b" : "") + (this.dim ? " d" : "") + (this.italic ? " i" : "") + (this.under ? " u" : "");
    return { key: this.key, fg, bg, cls: cls.trim() };
  }
}

function segmentNode(seg) {
  if (!seg.s) return document.createTextNode(seg.t);
  const span = document.createElement("span");
  if (seg.s.cls) span.className = seg.s.cls;
  if (seg.s.fg) span.style.color = seg.s.fg; // CSSOM, allowed by the page's CSP
  if (seg.s.bg) span.style.backgroundColor = seg.s.bg;
  span.textContent = seg.t;
  return span;
}

// TermBlock is one command in the terminal: its command line, its output
// (live frames, or the observation's content) and its end line.
class TermBlock {
  constructor(term, id, command, isInput) {
    this.term = term;
    this.id = id;
    this.el = document.createElement("div");
    this.el.className = "tb";
    const cmd = document.createElement("div");
    cmd.className = "tb-cmd" + (isInput ? " input" : "");
    cmd.textContent = (isInput ? "⌨ " : "$ ") + command;
    this.out = document.createElement("div");
    this.out.className = "tb-out";
    this.cur = document.createElement("div");
    this.cur.className = "tb-line";
    this.out.append(this.cur);
    this.el.append(cmd, this.out);
    this.lines = 1; // the command line
    this.chunks = [];
    this.pending = "";
    this.resetParser(); // lastLine: the last non-blank line shown
    this.lastSeq = 0;
    this.lossy = false; // a frame was missed: the observation's content replaces the live output
    this.live = false;
    this.done = false;
  }

  resetParser() {
    this.lastLine = "";
    this.ps1 = new PS1Filter();
    this.esc = "";
    this.style = new Style();
    this.line = []; // segments {t, s} of the line being written
    this.lineLen = 0;
    this.col = 0;
  }

  // output queues a live frame; seq numbers start at 1 and have no gaps
  // unless frames were lost.
  output(seq, data) {
    if (this.done) return;
    if (seq !== this.lastSeq + 1) this.lossy = true;
    this.lastSeq = seq;
    this.live = true;
    this.pending += data;
    this.term.schedule(this);
  }

  render() {
    if (!this.pending) return;
    const text = this.ps1.push(this.pending);
    this.pending = "";
    this.write(text);
  }

  // write parses text into lines and adds them to the DOM in one chunk.
  write(text) {
    text = this.esc + text;
    this.esc = "";
    const m = PARTIAL_ESC_RE.exec(text.slice(-256));
    if (m) {
      this.esc = m[0];
      text = text.slice(0, text.length - m[0].length);
    }
    text = this.tail(text);
    const done = [];
    let last = 0;
    TOKEN_RE.lastIndex = 0;
    for (let t; (t = TOKEN_RE.exec(text)) !== null;) {
      if (t.index > last) this.put(text.slice(last, t.index));
      last = TOKEN_RE.lastIndex;
      this.control(t, done);
    }
    if (last < text.length) this.put(text.slice(last));
    if (this.lineLen > LINE_MAX) {
      // A line without end is committed in pieces: re-rendering it whole
      // on every frame would grow with the output.
      done.push(this.line);
      this.line = [];
      this.lineLen = 0;
      this.col = 0;
    }
    this.flushLines(done);
  }

  // tail drops all but the last half `cap` lines of a burst before parsing
  // it: they would be scrolled out of the terminal at once anyway.
  tail(text) {
    const cap = this.term.cap >> 1;
    let i = text.length;
    for (let n = 0; n <= cap; n++) {
      if (i === 0) return text; // lastIndexOf(x, -1) would find index 0 again
      i = text.lastIndexOf("\n", i - 1);
      if (i < 0) return text;
    }
    this.line = [];
    this.lineLen = 0;
    this.col = 0;
    return text.slice(i + 1);
  }

  control(t, done) {
    const tok = t[0];
    if (t[2] !== undefined) return this.csi(t[1], t[2]);
    switch (tok) {
      case "\n": case "\r\n":
        done.push(this.line);
        this.line = [];
        this.lineLen = 0;
        this.col = 0;
        return;
      case "\r": this.col = 0; return;
      case "\b": this.col = Math.max(0, this.col - 1); return;
      case "\t": this.put(" ".repeat(8 - (this.col % 8))); return;
    }
    // Other escapes and control characters are not shown.
  }

  csi(params, final) {
    const n = parseInt(params, 10) || 0;
    switch (final) {
      case "m": this.style.apply(params); return;
      case "K": // erase in line
        if (n === 2) { this.line = []; this.lineLen = 0; }
        else if (n === 0) this.truncate(this.col);
        return;
      case "C": this.col = Math.min(this.lineLen, this.col + Math.max(1, n)); return;
      case "D": this.col = Math.max(0, this.col - Math.max(1, n)); return;
      case "G": this.col = Math.min(this.lineLen, Math.max(0, n - 1)); return;
    }
  }

  truncate(at) {
    if (at >= this.lineLen) return;
    const keep = [];
    let pos = 0;
    for (const seg of this.line) {
      if (pos >= at) break;
      keep.push(pos + seg.t.length <= at ? seg : { t: seg.t.slice(0, at - pos), s: seg.s });
      pos += seg.t.length;
    }
    this.line = keep;
    this.lineLen = at;
  }

  // put writes text at the cursor: appended at the end of the line, or
  // over what is there after a carriage return.
  put(text) {
    if (!text) return;
    const s = this.style.snapshot();
    if (this.col < this.lineLen) {
      const tail = [];
      let pos = 0;
      const end = this.col + text.length;
      for (const seg of this.line) {
        const a = pos, b = pos + seg.t.length;
        if (b > end) tail.push({ t: seg.t.slice(Math.max(0, end - a)), s: seg.s });
        pos = b;
      }
      this.truncate(this.col);
      this.append(text, s);
      for (const seg of tail) this.append(seg.t, seg.s);
      this.col = end;
      return;
    }
    this.append(text, s);
    this.col = this.lineLen;
  }

  append(t, s) {
    const last = this.line[this.line.length - 1];
    if (last && (last.s === s || (last.s && s && last.s.key === s.key))) last.t += t;
    else this.line.push({ t, s });
    this.lineLen += t.length;
  }

  flushLines(done) {
    for (let i = done.length - 1; i >= 0; i--) {
      const t = done[i].map((seg) => seg.t).join("");
      if (t.trim()) { this.lastLine = t.trimEnd(); break; }
    }
    if (done.length > 0) {
      const chunk = document.createElement("div");
      chunk.className = "tb-chunk";
      for (let i = 0; i < done.length; i++) {
        if (i > 0) chunk.append("\n");
        for (const seg of done[i]) chunk.append(segmentNode(seg));
      }
      chunk.lines = done.length;
      this.out.insertBefore(chunk, this.cur);
      this.chunks.push(chunk);
      this.lines += done.length;
      this.term.lines += done.length;
    }
    this.cur.textContent = "";
    for (const seg of this.line) this.cur.append(segmentNode(seg));
  }

  endsLike(content) {
    const lines = content.replace(/\x1b\[[0-9;?]*[@-~]/g, "").replace(/\r/g, "").trimEnd().split("\n");
    const last = lines[lines.length - 1].trimEnd();
    const shown = this.line.length > 0 && this.line.some((seg) => seg.t.trim()) ? this.line.map((seg) => seg.t).join("").trimEnd() : this.lastLine;
    return last === shown;
  }

  // clear removes the output (the observation replaces lossy live output).
  clear() {
    for (const c of this.chunks) { c.remove(); this.lines -= c.lines; this.term.lines -= c.lines; }
    this.chunks = [];
    this.pending = "";
    this.resetParser();
    this.cur.textContent = "";
  }

  // finish ends the block with its observation: the content when no
  // complete live output was seen, then the end line (exit code, suffix).
  finish(obs) {
    if (this.done) return;
    this.render();
    const rest = this.ps1.end();
    if (rest) this.write(rest);
    const x = obs.extras || {};
    const md = x.metadata || {};
    // Frames lost at the end leave no gap in the numbers: the shown output
    // must end as the observation's content does.
    if (!this.live || this.lossy || this.lastSeq === 0 || !this.endsLike(obs.content || "")) {
      this.clear();
      const text = (md.prefix || "") + (obs.content || "");
      if (text) this.write(text + (text.endsWith("\n") ? "" : "\n"));
    } else if (this.lineLen > 0) {
      this.write("\n");
    }
    this.done = true;
    const end = document.createElement("div");
    const code = typeof md.exit_code === "number" ? md.exit_code : null;
    const failed = obs.observation === "error" || (code !== null && code !== 0) || obs.success === false;
    end.className = "tb-end" + (code === -1 ? " waiting" : failed ? " bad" : " ok");
    let note = (md.suffix || "").trim();
    if (!note) note = obs.observation === "run" ? (obs.message || "") : obs.content || obs.message || "";
    if (!note && code !== null) note = "[exit code " + code + "]";
    end.textContent = note;
    if (code !== null) this.el.dataset.exit = String(code);
    this.el.append(end);
    this.lines += 1;
    this.term.lines += 1;
    this.term.schedule(null);
  }
}

// Term is the terminal of one session: blocks in order, a line budget, and
// one render per animation frame.
class Term {
  constructor(root, cap) {
    this.root = root;
    this.cap = cap || 5000;
    this.lines = 0;
    this.blocks = new Map();
    this.dirty = new Set();
    this.timer = 0;
    this.raf = 0;
    // follow: the view sticks to the tail until the reader scrolls up.
    this.follow = true;
    root.addEventListener("scroll", () => { this.follow = this.atBottom(); }, { passive: true });
  }

  reset() {
    this.root.textContent = "";
    this.blocks.clear();
    this.dirty.clear();
    this.lines = 0;
  }

  block(id, command, isInput) {
    let b = this.blocks.get(id);
    if (!b) {
      b = new TermBlock(this, id, command, isInput);
      this.blocks.set(id, b);
      this.lines += 1;
      this.root.append(b.el);
      this.schedule(null);
    }
    return b;
  }

  atBottom() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 48;
  }

  // schedule renders dirty blocks on the next animation frame (or a timer,
  // for a page the browser does not paint).
  schedule(block) {
    if (block) this.dirty.add(block);
    if (!this.raf) this.raf = requestAnimationFrame(() => this.flush());
    if (!this.timer) this.timer = setTimeout(() => this.flush(), 250);
  }

  flush() {
    cancelAnimationFrame(this.raf);
    clearTimeout(this.timer);
    this.raf = this.timer = 0;
    for (const b of this.dirty) b.render();
    this.dirty.clear();
    this.trim();
    if (this.follow) this.root.scrollTop = this.root.scrollHeight;
  }

  // trim drops the oldest lines beyond the budget: whole chunks, then
  // whole finished blocks; the newest chunk always stays.
  trim() {
    let last = null;
    for (const b of this.blocks.values()) if (b.chunks.length > 0) last = b.chunks[b.chunks.length - 1];
    for (const [id, b] of this.blocks) {
      if (this.lines <= this.cap) return;
      while (b.chunks.length > 0 && b.chunks[0] !== last && this.lines > this.cap) {
        const c = b.chunks.shift();
        c.remove();
        b.lines -= c.lines;
        this.lines -= c.lines;
      }
      if (this.lines > this.cap && b.done && b.chunks.length === 0) {
        b.el.remove();
        this.lines -= b.lines;
        this.blocks.delete(id);
      }
    }
  }
}

window.CorralTerm = { Term, PS1Filter };
