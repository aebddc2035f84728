// Corral's in-page helper for BrowserGym-style element ids ("bids").
// Evaluated as `(<this function>)(op, arg)`; it installs no globals except
// the per-window counters that keep bids unique and stable.
(op, arg) => {
  const ATTR = "bid";
  const SOM_TAGS = new Set(["input", "textarea", "select", "button", "a", "iframe", "video", "li", "td", "option"]);
  const CLICK_TAGS = new Set(["a", "button", "input", "select", "textarea", "summary", "option", "label", "details"]);
  const CLICK_ROLES = new Set(["button", "link", "checkbox", "radio", "tab", "menuitem", "option", "switch", "combobox", "textbox"]);

  // Frame ids: a..z, then aA, bA, ... (lower first letter, upper after),
  // so a bid's frame prefix is [a-z][A-Z]* per level, as BrowserGym's.
  function frameId(n) {
    const abc = "abcdefghijklmnopqrstuvwxyz";
    let s = abc[n % 26];
    n = Math.floor(n / 26);
    while (n > 0) {
      n--;
      s += abc[n % 26].toUpperCase();
      n = Math.floor(n / 26);
    }
    return s;
  }

  // All elements of a document or shadow root, shadow DOM content
  // following its host, in document order.
  function allElements(root) {
    const out = [];
    const walk = (r) => {
      for (const el of r.querySelectorAll("*")) {
        out.push(el);
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(root);
    return out;
  }

  function sameOriginWindow(frameEl) {
    try {
      const w = frameEl.contentWindow;
      if (w && w.document) return w;
    } catch (e) { /* cross-origin */ }
    return null;
  }

  function isFrame(el) {
    const t = el.tagName.toLowerCase();
    return t === "iframe" || t === "frame";
  }

  function clickable(el, win) {
    const tag = el.tagName.toLowerCase();
    if (CLICK_TAGS.has(tag) || el.onclick != null || el.hasAttribute("onclick")) return true;
    const role = el.getAttribute("role");
    if (role && CLICK_ROLES.has(role)) return true;
    if (el.isContentEditable) return true;
    try {
      return win.getComputedStyle(el).cursor === "pointer";
    } catch (e) {
      return false;
    }
  }

  function visibleRatio(r, win) {
    const area = r.width * r.height;
    if (area <= 0) return 0;
    const w = Math.max(0, Math.min(r.right, win.innerWidth) - Math.max(r.left, 0));
    const h = Math.max(0, Math.min(r.bottom, win.innerHeight) - Math.max(r.top, 0));
    return Math.round((w * h / area) * 100) / 100;
  }

  function whoGetsCenterClick(el, win, r) {
    let doc = win.document, hit = null, last = null;
    const x = (r.left + r.right) / 2, y = (r.top + r.bottom) / 2;
    do {
      last = hit;
      hit = doc.elementFromPoint(x, y);
      doc = hit && hit.shadowRoot;
    } while (doc && hit !== last);
    if (!hit) return "nobody";
    if (hit === el) return "self";
    return el.contains(hit) ? "child" : "other";
  }

  // mark gives every element of win (and its same-origin frames) a bid and
  // returns BrowserGym's extra_element_properties for them. An element
  // keeps its bid while it lives; new ones get the next number.
  function mark(win, prefix, offX, offY, props) {
    let first = false;
    if (!("__corralBidCounter" in win)) {
      win.__corralBidCounter = 0;
      win.__corralFrameCounter = 0;
      first = true;
    }
    const seen = new Set();
    const somButtons = [];
    for (const el of allElements(win.document)) {
      let bid = el.getAttribute(ATTR);
      // A page's own "bid" attribute (first visit) or a copied node's
      // duplicate gets a fresh id.
      if (bid === null || first || seen.has(bid) || !bid.startsWith(prefix)) {
        const local = isFrame(el) ? frameId(win.__corralFrameCounter++) : String(win.__corralBidCounter++);
        bid = prefix + local;
        el.setAttribute(ATTR, bid);
      }
      seen.add(bid);
      const r = el.getBoundingClientRect();
      const tag = el.tagName.toLowerCase();
      let som = false;
      const area = r.width * r.height;
      if (area >= 20 && (SOM_TAGS.has(tag) || el.onclick != null || clickable(el, win))) {
        const who = whoGetsCenterClick(el, win, r);
        if ((who === "self" || who === "child") && somButtons.every((b) => !b.contains(el))) {
          som = true;
          if (el.matches('button, a, input[type="button"], div[role="button"]')) somButtons.push(el);
          for (let p = el.parentElement; p; p = p.parentElement) {
            const pb = p.getAttribute(ATTR);
            if (pb && props[pb]) props[pb].set_of_marks = false;
          }
        }
      }
      props[bid] = {
        visibility: visibleRatio(r, win),
        bbox: [r.left + offX, r.top + offY, r.width, r.height],
        clickable: clickable(el, win),
        set_of_marks: som,
      };
      if (isFrame(el)) {
        const cw = sameOriginWindow(el);
        if (cw) mark(cw, bid, offX + r.left + el.clientLeft, offY + r.top + el.clientTop, props);
      }
    }
    return props;
  }

  function findIn(root, bid) {
    for (const el of allElements(root)) {
      if (el.getAttribute(ATTR) === bid) return el;
    }
    return null;
  }

  // locate finds the element of a bid, descending through the frames its
  // prefix names, scrolls it into view if asked and returns it with its
  // viewport offset.
  function locate(bid, scroll) {
    let win = window, offX = 0, offY = 0, i = 0;
    if (typeof bid !== "string" || bid === "") return { error: `Could not find element with bid "${bid}"` };
    while (i < bid.length && !/^[0-9]+$/.test(bid.slice(i))) {
      i++;
      while (i < bid.length && /[A-Z]/.test(bid[i])) i++;
      const fb = bid.slice(0, i);
      const fe = findIn(win.document, fb);
      if (!fe || !isFrame(fe)) return { error: `Could not find element with bid "${bid}"` };
      if (scroll) fe.scrollIntoView({ block: "nearest", inline: "nearest" });
      const cw = sameOriginWindow(fe);
      if (!cw) return { error: `Could not find element with bid "${bid}": it is inside a cross-origin frame, which Corral's browser cannot reach` };
      const r = fe.getBoundingClientRect();
      offX += r.left + fe.clientLeft;
      offY += r.top + fe.clientTop;
      win = cw;
    }
    const el = findIn(win.document, bid);
    if (!el) return { error: `Could not find element with bid "${bid}"` };
    if (scroll) {
      const r = el.getBoundingClientRect();
      if (r.top < 0 || r.left < 0 || r.bottom > win.innerHeight || r.right > win.innerWidth) {
        el.scrollIntoView({ block: "center", inline: "center" });
      }
    }
    return { el, win, offX, offY };
  }

  function box(l) {
    const r = l.el.getBoundingClientRect();
    const style = l.win.getComputedStyle(l.el);
    return {
      x: l.offX + r.left + r.width / 2,
      y: l.offY + r.top + r.height / 2,
      w: r.width,
      h: r.height,
      tag: l.el.tagName.toLowerCase(),
      type: (l.el.getAttribute("type") || "").toLowerCase(),
      visible: r.width > 0 && r.height > 0 && style.visibility !== "hidden" && style.display !== "none",
      disabled: !!l.el.disabled,
    };
  }

  function fire(el, name) {
    el.dispatchEvent(new Event(name, { bubbles: true }));
  }

  // prepareFill focuses and selects a text field's content so that the
  // driver can type over it, or sets the value of inputs that take no
  // typing (date, range, color...), as Playwright's fill does.
  function prepareFill(l, value) {
    const el = l.el;
    const tag = el.tagName.toLowerCase();
    if (tag === "input") {
      const type = (el.getAttribute("type") || "text").toLowerCase();
      if (["checkbox", "radio", "file", "button", "submit", "reset", "image", "hidden"].includes(type)) {
        return { error: `Error: Input of type "${type}" cannot be filled` };
      }
      if (["date", "time", "datetime-local", "month", "week", "range", "color"].includes(type)) {
        el.focus();
        el.value = value;
        if (type !== "range" && type !== "color" && el.value !== value) {
          return { error: `Error: Malformed value "${value}" for input of type "${type}"` };
        }
        fire(el, "input");
        fire(el, "change");
        return { done: true };
      }
      el.focus();
      el.select();
      return { done: false };
    }
    if (tag === "textarea") {
      el.focus();
      el.select();
      return { done: false };
    }
    if (el.isContentEditable) {
      el.focus();
      const sel = l.win.getSelection();
      const range = l.win.document.createRange();
      range.selectNodeContents(el);
      sel.removeAllRanges();
      sel.addRange(range);
      return { done: false };
    }
    return { error: "Error: Element is not an <input>, <textarea> or [contenteditable] element" };
  }

  function selectOption(l, options) {
    const el = l.el;
    if (el.tagName.toLowerCase() !== "select") return { error: "Error: Element is not a <select> element" };
    const opts = Array.from(el.options);
    const picked = [];
    for (const want of options) {
      const o = opts.find((o) => o.value === want) || opts.find((o) => o.label === want || o.text.trim() === want);
      if (!o) return { error: `Error: Could not find option "${want}" in the <select> (its options: ${JSON.stringify(opts.map((o) => o.label))})` };
      picked.push(o);
    }
    if (picked.length > 1 && !el.multiple) return { error: "Error: Cannot select multiple options in a single-choice <select>" };
    for (const o of opts) o.selected = picked.includes(o);
    fire(el, "input");
    fire(el, "change");
    return { done: true };
  }

  function focusedBid() {
    let doc = document, bid = "";
    for (;;) {
      let el = doc.activeElement;
      while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
      if (!el) return bid;
      bid = el.getAttribute(ATTR) || "";
      if (!isFrame(el)) return bid;
      const cw = sameOriginWindow(el);
      if (!cw) return bid;
      doc = cw.document;
    }
  }

  switch (op) {
    case "mark":
      return mark(window, "", 0, 0, {});
    case "focused":
      return focusedBid();
  }
  // The rest act on one element.
  const l = locate(arg.bid, op !== "element" && op !== "peek");
  if (l.error) {
    if (op === "element") throw new Error(l.error);
    return { error: l.error };
  }
  switch (op) {
    case "element":
      return l.el;
    case "box":
    case "peek":
      return box(l);
    case "focus":
      l.el.focus();
      return { done: true };
    case "fill":
      return prepareFill(l, arg.value);
    case "select":
      return selectOption(l, arg.options);
    case "checked":
      return { checked: !!l.el.checked };
  }
  throw new Error("unknown op " + op);
}
