// The timeline of a computation, stepped through in the browser (ad_magic).
//
// Every state was computed once in Python (ad_magic/timeline.py, Timeline.payload): the
// laid-out SVG, each node's texts per state, the captions, the node cards and the Play
// interval. Moving the slider only restyles that SVG here: no round trip to the kernel, so
// it keeps working after the kernel is interrupted or shut down. The same module runs in
// the widget (anywidget: `export default {render}`) and in the page written by save_html
// (mount()).
//
// mount() puts the parts together; each part below is one concern (the DOM, a step's
// styling, the cards, zoom and pan, Play, the keys, the module button, telling Python the
// step). Every listener, observer, timer and model handler a part adds is tied to one
// AbortSignal: the cleanup mount() returns aborts it, and nothing is left behind.

const MIN_SCALE = 0.6;      // fitting the width never shrinks labels below 60 % (8.8 px): it scrolls (dot.MIN_SCALE)
const MAX_SCALE = 4;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c);
  return el;
}

// The last event [state, value] with state <= k (events are sorted by state).
function at(events, k) {
  let found = events[0][1];
  for (let i = 1; i < events.length && events[i][0] <= k; i++) found = events[i][1];
  return found;
}

// A model handler that lives as long as the signal.
function onModel(model, event, handler, signal) {
  model.on(event, handler);
  signal.addEventListener("abort", () => model.off(event, handler), {once: true});
}

const LEGEND = [
  ["leaf", "input (leaf)"], ["const", "constant"], ["value", "intermediate"],
  ["output", "output"], ["op", "operation"], ["current", "this step"], ["changed", "grad just changed"],
];

// ------------------------------------------------------------------ the DOM

function buildLegend() {
  return h("div", {class: "ad-legend"},
           ...LEGEND.map(([kind, words]) => h("span", {class: `ad-key ad-key-${kind}`}, h("i", {}), words)));
}

// Every element of one timeline, appended to `el`; the SVG's node groups indexed.
function buildDom(el, data) {
  const ui = {
    root: h("div", {class: "ad-timeline", tabindex: "0"}),
    play: h("button", {class: "ad-play", type: "button", title: "Play / pause", text: "▶ Play"}),
    prev: h("button", {class: "ad-prev", type: "button", title: "Previous step (←)", text: "◀ Previous"}),
    next: h("button", {class: "ad-next", type: "button", title: "Next step (→)", text: "Next ▶"}),
    range: h("input", {class: "ad-range", type: "range", min: "0", max: String(data.last), step: "1",
                       value: "0", "aria-label": "step"}),
    label: h("span", {class: "ad-label"}),
    caption: h("div", {class: "ad-caption"}),
    rule: h("div", {class: "ad-rule"}),
    zoomOut: h("button", {type: "button", class: "ad-zoom-out", title: "Zoom out", text: "−"}),
    zoomFit: h("button", {type: "button", class: "ad-zoom-fit", title: "Show the whole graph", text: "Fit"}),
    zoomIn: h("button", {type: "button", class: "ad-zoom-in", title: "Zoom in", text: "+"}),
    hint: h("span", {class: "ad-hint", hidden: "",
                     text: "Larger than its frame at a readable size: scroll or drag for the rest, "
                           + "or press Fit to see it whole."}),
    viewport: h("div", {class: "ad-viewport"}),
    card: h("div", {class: "ad-card", hidden: ""}),
  };
  // the hint sits in the zoom bar, above the picture: never under a viewport filling the screen
  ui.zoom = h("div", {class: "ad-zoom"}, ui.hint, ui.zoomOut, ui.zoomFit, ui.zoomIn);
  ui.viewport.innerHTML = data.svg;
  ui.stage = h("div", {class: "ad-stage"}, ui.zoom, ui.viewport, ui.card);
  ui.root.append(h("div", {class: "ad-controls"}, ui.play, ui.prev, ui.next, ui.range, ui.label),
                 ui.caption, ui.rule, ui.stage, buildLegend());
  el.append(ui.root);

  ui.svg = ui.viewport.querySelector("svg");
  ui.values = [];
  ui.ops = [];
  for (const g of ui.svg.querySelectorAll("g[data-v]")) ui.values[+g.dataset.v] = g;
  for (const g of ui.svg.querySelectorAll("g[data-f]")) ui.ops[+g.dataset.f] = g;
  ui.dataTexts = ui.values.map(g => g ? Array.from(g.querySelectorAll("text.ad-data")) : []);
  ui.gradTexts = ui.values.map(g => g ? g.querySelector("text.ad-grad") : null);
  return ui;
}

// The node (its position in the payload) under an event's target, or null.
function nodeOf(event) {
  const g = event.target.closest && event.target.closest("g[data-v], g[data-f]");
  if (!g) return null;
  return g.dataset.v !== undefined ? +g.dataset.v : +g.dataset.f;
}

// ------------------------------------------------------------------ labels fitted to their boxes

const fontSize = (text) => parseFloat(text.getAttribute("font-size")) || 11;

// A label wider than its box is squeezed into it, never cut. The texts changed by a move
// are measured together, after all are written: one layout per move, not one each.
// `texts` holds [text element, node].
function fitTexts(ui, texts) {
  const room = (i) => parseFloat(ui.values[i].dataset.w) - 6;
  // Only texts that might be too wide are measured (a generous 0.62 em per character).
  const changed = texts.filter(([text, i]) => text.textContent.length * 0.62 * fontSize(text) > room(i)
                                              || text.hasAttribute("textLength"));
  for (const [text] of changed) {
    text.removeAttribute("textLength");
    text.removeAttribute("lengthAdjust");
  }
  const widths = changed.map(([text]) => (text.textContent ? text.getComputedTextLength() : 0));
  changed.forEach(([text, i], n) => {
    if (widths[n] > room(i) && room(i) > 0) {
      text.setAttribute("textLength", room(i).toFixed(1));
      text.setAttribute("lengthAdjust", "spacingAndGlyphs");
    }
  });
}

// Every label of the graph (names, values, grads), for the first fit.
function allTexts(ui) {
  const all = [];
  ui.values.forEach((g, i) => {
    if (!g) return;
    const name = g.querySelector("text.ad-name");
    if (name) all.push([name, i]);
    for (const t of ui.dataTexts[i]) all.push([t, i]);
    if (ui.gradTexts[i]) all.push([ui.gradTexts[i], i]);
  });
  return all;
}

// ------------------------------------------------------------------ one step's styling

// Shows state k: highlight and marks, each node's texts, caption, rule, controls.
// `onShown(k, fromModel)` runs after each change of step.
function makeSteps(ui, data, onShown) {
  const last = data.last;
  const shownData = ui.values.map(() => null), shownGrad = ui.values.map(() => null);
  let k = -1, lit = [], marked = [], boxes = [];
  const modules = data.modules || {};
  const clusters = {};
  for (const g of ui.svg.querySelectorAll("g.ad-module-box[data-call]")) clusters[g.dataset.call] = g;
  const steps = {fitted: false, get k() { return k; }, last};

  function restyle() {
    for (const g of lit) g.classList.remove("ad-current");
    for (const g of marked) g.classList.remove("ad-changed");
    const hi = data.highlight[k];
    lit = hi >= 0 ? [ui.values[hi], ui.ops[hi]].filter(Boolean) : [];
    for (const g of lit) g.classList.add("ad-current");
    marked = data.changed[k].map(i => ui.values[i]).filter(Boolean);
    for (const g of marked) g.classList.add("ad-changed");
    // The open modules around the step's node are highlighted too (a collapsed module's
    // own box is the node itself).
    for (const g of boxes) g.classList.remove("ad-module-current");
    boxes = [];
    for (let c = hi >= 0 && modules.cluster ? modules.cluster[hi] : -1; c >= 0; c = modules.parent[c]) {
      if (clusters[c]) boxes.push(clusters[c]);
    }
    for (const g of boxes) g.classList.add("ad-module-current");
  }

  function rewriteTexts() {
    const changedTexts = [];
    for (let i = 0; i < ui.values.length; i++) {
      if (!ui.values[i]) continue;
      const texts = at(data.data[i], k);
      if (texts !== shownData[i]) {
        shownData[i] = texts;
        ui.dataTexts[i].forEach((t, j) => { t.textContent = texts[j] || ""; changedTexts.push([t, i]); });
      }
      const grad = at(data.grads[i], k);
      if (grad !== shownGrad[i] && ui.gradTexts[i]) {
        shownGrad[i] = grad;
        ui.gradTexts[i].textContent = grad;
        changedTexts.push([ui.gradTexts[i], i]);
      }
    }
    if (steps.fitted) fitTexts(ui, changedTexts);
  }

  function rewriteControls() {
    ui.label.textContent = data.labels[k];
    ui.caption.textContent = data.captions[k];
    ui.rule.textContent = data.rules[k];
    ui.range.value = String(k);
    ui.prev.disabled = k <= 0;
    ui.next.disabled = k >= last;
    ui.root.dataset.step = String(k);
  }

  steps.show = (target, fromModel = false) => {
    target = Math.max(0, Math.min(last, target | 0));
    if (target === k) return;
    k = target;
    restyle();
    rewriteTexts();
    rewriteControls();
    onShown(k, fromModel);
  };
  return steps;
}

// ------------------------------------------------------------------ node cards

// The screen box of the current step's node(s) (.ad-current), or null.
function currentBox(ui) {
  const lit = ui.svg.querySelectorAll("g.ad-current");
  if (!lit.length) return null;
  let box = null;
  for (const g of lit) {
    const r = g.getBoundingClientRect();
    box = box ? {left: Math.min(box.left, r.left), top: Math.min(box.top, r.top),
                 right: Math.max(box.right, r.right), bottom: Math.max(box.bottom, r.bottom)}
              : {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
  }
  return box;
}

const overlap = (a, b) => (!a || !b) ? 0
  : Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
    * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));

// Where a card of w x h goes (stage coordinates): beside the clicked node — right, left,
// below or above it — where it covers neither that node nor the current step's node
// (the first such spot), else where it covers least of them.
function placeCard(node, current, frame, w, h) {
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(v, Math.max(lo, hi)));
  const spots = [
    [node.right + 8, node.top], [node.left - w - 8, node.top],
    [node.left, node.bottom + 8], [node.left, node.top - h - 8],
  ].map(([x, y]) => {
    // inside the stage's width; below its bottom the stage grows to hold the card
    const left = clamp(x - frame.left, 0, frame.width - w - 4), top = Math.max(0, y - frame.top);
    const screen = {left: frame.left + left, top: frame.top + top,
                    right: frame.left + left + w, bottom: frame.top + top + h};
    return {left, top, covered: overlap(screen, current) * 4 + overlap(screen, node)};
  });
  return spots.reduce((best, spot) => (spot.covered < best.covered ? spot : best));
}

// A node's card opens on click (pinned) or hover, follows the step, closes with × or Esc.
function attachCards(ui, data, steps, signal) {
  const {card, stage, svg} = ui;
  let pinned = null, hovered = null;

  function open(i) {
    const k = steps.k;
    const lines = data.cards[i].filter(([, start, end]) => start <= k && (end === null || k < end));
    card.replaceChildren(h("button", {type: "button", class: "ad-card-close", title: "Close", text: "×"}),
                         ...lines.map(([text], n) => h("div", {class: n === 0 ? "ad-card-title" : "ad-card-line",
                                                               text})));
    card.dataset.node = String(i);
    card.hidden = false;
    place(i);
  }
  function place(i) {
    const g = ui.values[i] || ui.ops[i];
    if (!g) return;
    stage.style.minHeight = "";
    const frame = stage.getBoundingClientRect();
    const {left, top} = placeCard(g.getBoundingClientRect(), currentBox(ui), frame,
                                  card.offsetWidth, card.offsetHeight);
    card.style.left = `${left}px`;
    card.style.top = `${top}px`;
    // A card taller than the picture makes room for itself rather than being cut off.
    if (top + card.offsetHeight > frame.height) stage.style.minHeight = `${top + card.offsetHeight + 4}px`;
  }
  function hide() { card.hidden = true; stage.style.minHeight = ""; }
  function close() { pinned = hovered = null; hide(); }

  svg.addEventListener("click", (event) => {
    const i = nodeOf(event);
    if (event.target.closest && event.target.closest("g[data-call]")) return;   // a module box: opens it
    if (i === null || !data.cards[i]) return;
    pinned = i;
    open(i);
  }, {signal});
  svg.addEventListener("mouseover", (event) => {
    const i = nodeOf(event);
    if (i === null || pinned !== null || !data.cards[i]) return;
    if (event.target.closest("g[data-call]")) return;   // a module's box is for opening it
    hovered = i;
    open(i);
  }, {signal});
  svg.addEventListener("mouseout", (event) => {
    if (pinned !== null || hovered === null) return;
    const to = event.relatedTarget;
    if (to && to.closest && nodeOf({target: to}) === hovered) return;   // still over the same node
    hovered = null;
    hide();
  }, {signal});
  card.addEventListener("click", (event) => {
    if (event.target.classList.contains("ad-card-close")) close();
  }, {signal});
  // The picture scrolls under the card (following the step, or the learner's panning):
  // the card moves with its node, once per frame.
  let moving = 0;
  ui.viewport.addEventListener("scroll", () => {
    if (moving || card.hidden) return;
    moving = requestAnimationFrame(() => {
      moving = 0;
      if (!card.hidden) place(+card.dataset.node);
    });
  }, {signal});
  signal.addEventListener("abort", () => cancelAnimationFrame(moving), {once: true});
  return {
    refresh() { if (pinned !== null || hovered !== null) open(pinned !== null ? pinned : hovered); },
    close,
  };
}

// ------------------------------------------------------------------ zoom and pan

// Fit the output's width, never below MIN_SCALE; scroll (or drag) beyond. "auto" fits the
// width without going below MIN_SCALE; the Fit button shows the whole graph however
// small; zooming by hand stops both.
function attachZoom(ui, signal, beforeFit = () => {}) {
  const {svg, viewport, root, hint} = ui;
  const size = (name) => parseFloat(svg.getAttribute(name)) * (svg.getAttribute(name).endsWith("pt") ? 4 / 3 : 1);
  const width = size("width"), height = size("height");
  let scale = 1, fitting = "auto", drag = null;

  function apply(s, least = 0.2) {
    scale = Math.max(least, Math.min(MAX_SCALE, s));
    svg.setAttribute("width", `${(width * scale).toFixed(1)}px`);
    svg.setAttribute("height", `${(height * scale).toFixed(1)}px`);
    root.dataset.scale = scale.toFixed(3);
    hint.hidden = !(width * scale > viewport.clientWidth + 1 || height * scale > viewport.clientHeight + 1);
  }
  // The viewport is never taller than what fits under the controls in the visible part of
  // the page (the notebook's scrolling panel, or the window): a deep graph scrolls inside it,
  // and the controls and the current node are on screen together.
  function capHeight() {
    const room = visibleHeight(root) - (viewport.getBoundingClientRect().top - root.getBoundingClientRect().top) - 12;
    const cap = Math.max(MIN_VIEWPORT, Math.floor(room));
    viewport.style.maxHeight = `${cap}px`;
    return cap;
  }
  function fit() {
    beforeFit();         // the caption's height first: the viewport's cap depends on it
    const cap = capHeight();
    const room = viewport.clientWidth - 4;
    if (room <= 0 || !fitting) return;
    const whole = Math.min(1, room / width);
    // Fit shows the whole graph: its width and its height in the viewport.
    if (fitting === "whole") apply(Math.min(whole, (cap - 4) / height), 0);
    else apply(Math.max(MIN_SCALE, whole));
  }

  ui.zoomIn.addEventListener("click", () => { fitting = false; apply(scale * 1.25); }, {signal});
  ui.zoomOut.addEventListener("click", () => { fitting = false; apply(scale / 1.25); }, {signal});
  ui.zoomFit.addEventListener("click", () => { fitting = "whole"; fit(); }, {signal});
  viewport.addEventListener("wheel", (event) => {
    if (!event.ctrlKey) return;
    event.preventDefault();
    fitting = false;
    apply(scale * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
  }, {passive: false, signal});
  viewport.addEventListener("mousedown", (event) => {
    if (nodeOf(event) !== null || event.button !== 0) return;
    drag = {x: event.clientX, y: event.clientY, left: viewport.scrollLeft, top: viewport.scrollTop};
    viewport.classList.add("ad-panning");
  }, {signal});
  // A drag may leave the viewport: followed on the window until the button is released.
  window.addEventListener("mousemove", (event) => {
    if (!drag) return;
    viewport.scrollLeft = drag.left - (event.clientX - drag.x);
    viewport.scrollTop = drag.top - (event.clientY - drag.y);
  }, {signal});
  window.addEventListener("mouseup", () => { drag = null; viewport.classList.remove("ad-panning"); }, {signal});
  if (typeof ResizeObserver !== "undefined") {
    const resizing = new ResizeObserver(() => fit());
    resizing.observe(viewport);
    signal.addEventListener("abort", () => resizing.disconnect(), {once: true});
  }
  window.addEventListener("resize", () => fit(), {signal});

  // Follow the step: when the current node is not wholly inside the viewport, scroll the
  // viewport (smoothly) to bring it to the middle. Only a change of step moves it: a
  // learner who panned away keeps their view until the next step.
  function follow(smooth = true) {
    if (drag) return;
    const box = currentBox(ui);
    if (!box) return;
    const view = viewport.getBoundingClientRect();
    const inner = {left: view.left + viewport.clientLeft, top: view.top + viewport.clientTop};
    inner.right = inner.left + viewport.clientWidth;
    inner.bottom = inner.top + viewport.clientHeight;
    const margin = 8;
    const inside = box.left >= inner.left + margin && box.right <= inner.right - margin
      && box.top >= inner.top + margin && box.bottom <= inner.bottom - margin;
    if (inside) return;
    const dx = (box.left + box.right) / 2 - (inner.left + inner.right) / 2;
    const dy = (box.top + box.bottom) / 2 - (inner.top + inner.bottom) / 2;
    viewport.scrollTo({left: viewport.scrollLeft + dx, top: viewport.scrollTop + dy,
                       behavior: smooth ? "smooth" : "auto"});
  }
  return {fit, follow};
}

const MIN_VIEWPORT = 160;   // px: below this a viewport shows too little; the page scrolls instead

// The height of the part of the page `el` can be seen in: the window's, or that of the
// smallest box around it that scrolls (JupyterLab's notebook panel, under Lab's own bars).
// Where the widget is scrolled to does not matter: the learner scrolls it into view.
function visibleHeight(el) {
  let height = window.innerHeight;
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    if (p.clientHeight > 0 && p.scrollHeight > p.clientHeight + 1
        && /(auto|scroll)/.test(getComputedStyle(p).overflowY)) height = Math.min(height, p.clientHeight);
  }
  return height;
}

// ------------------------------------------------------------------ a caption area of one height

// The caption and the rule line keep the height of their tallest text over all steps (up to
// MAX_CAPTION_LINES lines; a longer one scrolls), so the picture below never jumps while
// stepping. Measured again when the width changes (lines wrap differently).
const MAX_CAPTION_LINES = 4;
function holdCaptionHeight(ui, data) {
  function measure(el, texts) {
    const shown = el.textContent, hidden = el.hidden;
    el.hidden = false;
    el.style.minHeight = "";
    el.style.height = "auto";
    let tallest = 0;
    for (const text of new Set(texts)) {
      el.textContent = text;
      tallest = Math.max(tallest, el.scrollHeight);
    }
    el.textContent = shown;
    el.hidden = hidden;
    const line = parseFloat(getComputedStyle(el).lineHeight) || 16;
    el.style.height = `${Math.min(tallest, MAX_CAPTION_LINES * line)}px`;
  }
  let width = -1;
  function hold() {           // called by the zoom's one ResizeObserver, before it fits
    const w = ui.root.clientWidth;
    if (w === width || w <= 0) return;
    width = w;
    measure(ui.caption, data.captions);
    measure(ui.rule, data.rules);
    ui.rule.hidden = false;       // the rule's room stays, blank at steps without one
  }
  return {hold};
}

// ------------------------------------------------------------------ stepping: buttons, slider, Play

function attachStepping(ui, data, steps, signal) {
  const interval = data.play_interval_ms;
  let timer = null;
  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    ui.play.textContent = "▶ Play";
  }
  function move(delta) { stop(); steps.show(steps.k + delta); }
  ui.play.addEventListener("click", () => {
    if (timer !== null) { stop(); return; }
    if (steps.k >= steps.last) steps.show(0);
    ui.play.textContent = "❚❚ Pause";
    timer = setInterval(() => { if (steps.k >= steps.last) stop(); else steps.show(steps.k + 1); }, interval);
  }, {signal});
  ui.prev.addEventListener("click", () => move(-1), {signal});
  ui.next.addEventListener("click", () => move(+1), {signal});
  ui.range.addEventListener("input", () => { stop(); steps.show(+ui.range.value); }, {signal});
  signal.addEventListener("abort", stop, {once: true});
  return {move, stop};
}

// ------------------------------------------------------------------ the keyboard

// ←/→ step and Esc closes the card, only while the focus is in this timeline. Listened for
// on the window, capturing, before the notebook's own shortcuts (which listen on the
// document) can take the arrow keys.
function attachKeys(ui, stepping, cards, signal) {
  const {root, range} = ui;
  window.addEventListener("keydown", (event) => {
    if (!(event.target instanceof Node) || !root.contains(event.target)) return;
    if (event.key === "Escape") { cards.close(); event.stopPropagation(); return; }
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.stopPropagation();
    event.preventDefault();
    stepping.move(event.key === "ArrowRight" ? 1 : -1);
  }, {capture: true, signal});
  // A click anywhere but the range or a button gives the timeline the keyboard.
  root.addEventListener("click", (event) => {
    if (event.target !== range && !(event.target.closest && event.target.closest("button"))) root.focus();
  }, {signal});
}

// ------------------------------------------------------------------ Python, through the widget's model

// Python hears the browser through the widget's model: a trait set and saved (`position`,
// `modules`) goes with a "heard?" message the kernel answers. Sending that message first
// tells whether a kernel can listen at all: once the comm is closed (the kernel shut down)
// it throws, and the trait is not sent, so no failed sync is logged. The step is told one
// message at a time: the next only once the kernel has answered the last (the latest
// step then; those moved past meanwhile are skipped), so a busy kernel is not flooded.
function linkToPython(model, signal) {
  const me = Math.random().toString(36).slice(2);
  let asked = null, waiting = null, n = 0;
  function save(name, value) {
    asked = `${me}:${++n}`;
    try {
      model.send({kind: "heard?", id: asked});
      model.set(name, value);
      model.save_changes();
      return true;
    } catch (e) {
      return false;        // no kernel (a closed comm, or a page with no comm at all): the widget stays local
    }
  }
  function tell() {
    const k = waiting;
    waiting = null;
    save("position", k);
  }
  onModel(model, "msg:custom", (msg) => {
    if (!msg || msg.kind !== "heard" || msg.id !== asked) return;
    asked = null;
    if (waiting !== null) tell();
  }, signal);
  return {
    position(k) {
      waiting = k;
      if (asked === null) tell();
    },
    save,
  };
}

// Module boxes: a click on a module's box (a collapsed module, or an open one's outline
// or title) asks Python for the timeline with that module opened or closed; the button,
// for every module collapsed or expanded. The new payload mounts the widget again. A page
// with no kernel says that it needs one.
function addModulesButton(ui, data, python, signal) {
  const modules = data.modules || {calls: 0, collapsed: 0};
  if (modules.calls <= 0) return;
  ui.svg.addEventListener("click", (event) => {
    const g = event.target.closest && event.target.closest("g[data-call]");
    if (!g) return;
    const call = +g.dataset.call;
    const toggled = new Set(modules.toggled || []);
    if (toggled.has(call)) toggled.delete(call); else toggled.add(call);
    ui.root.dataset.modules = "waiting";
    if (!python || !python.save("toggled", Array.from(toggled).sort((a, b) => a - b))) {
      ui.root.dataset.modules = "no kernel";
      ui.hint.textContent = "Opening or closing a module lays the graph out again: which needs the kernel running.";
      ui.hint.hidden = false;
    }
  }, {signal});
  if (!python) return;
  const collapsed = modules.collapsed > 0;
  const toggle = h("button", {type: "button", class: "ad-modules",
                              title: collapsed ? "Draw every module's ops" : "Draw each module as one box",
                              text: collapsed ? "Expand modules" : "Collapse modules"});
  toggle.addEventListener("click", () => {
    toggle.disabled = true;
    toggle.title = python.save("modules", collapsed ? "expanded" : "collapsed")
      ? "Waiting for the kernel to lay the graph out again" : "This needs the kernel";
  }, {signal});
  ui.hint.after(toggle);
}

// ------------------------------------------------------------------ the timeline

// One timeline in `el`, driven by `data` (Timeline.payload); `model` is the widget's
// model, or null on a page of its own. Returns the cleanup, which removes every listener,
// observer, timer and model handler added here.
export function mount(el, data, model) {
  const controller = new AbortController();
  const signal = controller.signal;
  const ui = buildDom(el, data);
  const python = model ? linkToPython(model, signal) : null;
  let cards = null, zoom = null;
  const steps = makeSteps(ui, data, (k, fromModel) => {
    if (zoom && steps.fitted) zoom.follow();
    if (cards) cards.refresh();
    if (python && !fromModel) python.position(k);
  });
  cards = attachCards(ui, data, steps, signal);
  const captions = holdCaptionHeight(ui, data);
  zoom = attachZoom(ui, signal, () => captions.hold());
  const stepping = attachStepping(ui, data, steps, signal);
  attachKeys(ui, stepping, cards, signal);
  addModulesButton(ui, data, python, signal);
  if (model) {
    onModel(model, "change:position", () => steps.show(model.get("position"), true), signal);
  }

  steps.show(model ? model.get("position") : 0, true);
  const frame = requestAnimationFrame(() => {   // once the SVG is in the page and can be measured
    zoom.fit();
    fitTexts(ui, allTexts(ui));
    steps.fitted = true;
    zoom.follow(false);
  });
  signal.addEventListener("abort", () => cancelAnimationFrame(frame), {once: true});
  return () => controller.abort();
}

// anywidget: one timeline per view, mounted again when Python sends a new one (modules
// collapsed or expanded).
function render({model, el}) {
  let unmount = mount(el, model.get("data"), model);
  const remount = () => {
    unmount();
    el.replaceChildren();
    unmount = mount(el, model.get("data"), model);
  };
  model.on("change:data", remount);
  return () => {
    model.off("change:data", remount);
    unmount();
  };
}

export default {render};
