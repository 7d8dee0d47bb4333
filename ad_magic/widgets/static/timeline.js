// The timeline of a computation, stepped through in the browser (ad_magic).
//
// Every state was computed once in Python (ad_magic/timeline.py, Timeline.payload): the
// laid-out SVG, each node's texts per state, the captions and the node cards. Moving the
// slider only restyles that SVG here: no round trip to the kernel, so it keeps working
// after the kernel is interrupted or shut down. The same module runs in the widget
// (anywidget: `export default {render}`) and in the page written by save_html (mount()).

const PLAY_INTERVAL_MS = 700;
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

const LEGEND = [
  ["leaf", "input (leaf)"], ["const", "constant"], ["value", "intermediate"],
  ["output", "output"], ["op", "operation"], ["current", "this step"], ["changed", "grad just changed"],
];

// Tell Python where the widget is only while a kernel listens (after a shutdown the
// widget keeps stepping on its own, without a flood of failed sync messages).
function kernelAliveFor(model) {
  const manager = model && model.widget_manager;
  if (!manager || !("kernel" in manager)) return true;   // a front end that does not say: try
  const kernel = manager.kernel;
  return !!kernel && !kernel.isDisposed && kernel.status !== "dead" && kernel.connectionStatus !== "disconnected";
}

export function mount(el, data, model) {
  const kernelAlive = () => { try { return kernelAliveFor(model); } catch (e) { return false; } };
  const last = data.last;
  const root = h("div", {class: "ad-timeline", tabindex: "0"});
  const play = h("button", {class: "ad-play", type: "button", title: "Play / pause", text: "▶ Play"});
  const prev = h("button", {class: "ad-prev", type: "button", title: "Previous step (←)", text: "◀ Previous"});
  const next = h("button", {class: "ad-next", type: "button", title: "Next step (→)", text: "Next ▶"});
  const range = h("input", {class: "ad-range", type: "range", min: "0", max: String(last), step: "1",
                            value: "0", "aria-label": "step"});
  const label = h("span", {class: "ad-label"});
  const controls = h("div", {class: "ad-controls"}, play, prev, next, range, label);
  const caption = h("div", {class: "ad-caption"});
  const rule = h("div", {class: "ad-rule"});
  const zoomOut = h("button", {type: "button", class: "ad-zoom-out", title: "Zoom out", text: "−"});
  const zoomFit = h("button", {type: "button", class: "ad-zoom-fit", title: "Show the whole graph", text: "Fit"});
  const zoomIn = h("button", {type: "button", class: "ad-zoom-in", title: "Zoom in", text: "+"});
  const zoom = h("div", {class: "ad-zoom"}, zoomOut, zoomFit, zoomIn);
  // Module boxes: collapse or expand them (the kernel computes the other timeline).
  const modules = data.modules || {calls: 0, collapsed: 0};
  if (model && modules.calls > 0) {
    const collapsed = modules.collapsed > 0;
    const toggle = h("button", {type: "button", class: "ad-modules",
                                title: collapsed ? "Draw every module's ops" : "Draw each module as one box",
                                text: collapsed ? "Expand modules" : "Collapse modules"});
    toggle.onclick = () => {
      if (!kernelAlive()) { toggle.disabled = true; toggle.title = "needs the kernel"; return; }
      toggle.disabled = true;
      model.set("modules", collapsed ? "expanded" : "collapsed");
      model.save_changes();
    };
    zoom.prepend(toggle);
  }
  const hint = h("div", {class: "ad-hint", hidden: "",
                         text: "At a readable size this graph is wider than the output: scroll sideways (or drag) "
                               + "for the rest, or press Fit to see it whole."});
  const viewport = h("div", {class: "ad-viewport"});
  viewport.innerHTML = data.svg;
  const legend = h("div", {class: "ad-legend"});
  for (const [kind, words] of LEGEND) {
    legend.append(h("span", {class: `ad-key ad-key-${kind}`}, h("i", {}), words));
  }
  const card = h("div", {class: "ad-card", hidden: ""});
  const stage = h("div", {class: "ad-stage"}, zoom, viewport, card, hint);
  root.append(controls, caption, rule, stage, legend);
  el.append(root);

  const svg = viewport.querySelector("svg");
  const values = [], ops = [];
  for (const g of svg.querySelectorAll("g[data-v]")) values[+g.dataset.v] = g;
  for (const g of svg.querySelectorAll("g[data-f]")) ops[+g.dataset.f] = g;
  const dataTexts = values.map(g => g ? Array.from(g.querySelectorAll("text.ad-data")) : []);
  const gradTexts = values.map(g => g ? g.querySelector("text.ad-grad") : null);
  const shownData = values.map(() => null), shownGrad = values.map(() => null);
  let k = -1, lit = [], marked = [], timer = null, pinned = null, hovered = null, fitted = false;

  const fontSize = (text) => parseFloat(text.getAttribute("font-size")) || 11;
  // A label wider than its box is squeezed into it, never cut. The texts changed by a
  // move are measured together, after all are written: one layout per move, not one each.
  function fitAll(texts) {
    // Only texts that might be too wide are measured (a generous 0.62 em per character).
    const changed = texts.filter(([text, i]) => text.textContent.length * 0.62 * fontSize(text)
                                               > parseFloat(values[i].dataset.w) - 6 || text.hasAttribute("textLength"));
    for (const [text] of changed) {
      text.removeAttribute("textLength");
      text.removeAttribute("lengthAdjust");
    }
    const widths = changed.map(([text]) => (text.textContent ? text.getComputedTextLength() : 0));
    changed.forEach(([text, i], n) => {
      const room = parseFloat(values[i].dataset.w) - 6;
      if (widths[n] > room && room > 0) {
        text.setAttribute("textLength", room.toFixed(1));
        text.setAttribute("lengthAdjust", "spacingAndGlyphs");
      }
    });
  }

  function show(target, fromModel) {
    target = Math.max(0, Math.min(last, target | 0));
    if (target === k) return;
    k = target;
    for (const g of lit) g.classList.remove("ad-current");
    for (const g of marked) g.classList.remove("ad-changed");
    const hi = data.highlight[k];
    lit = hi >= 0 ? [values[hi], ops[hi]].filter(Boolean) : [];
    for (const g of lit) g.classList.add("ad-current");
    marked = data.changed[k].map(i => values[i]).filter(Boolean);
    for (const g of marked) g.classList.add("ad-changed");
    const changedTexts = [];
    for (let i = 0; i < values.length; i++) {
      if (!values[i]) continue;
      const texts = at(data.data[i], k);
      if (texts !== shownData[i]) {
        shownData[i] = texts;
        dataTexts[i].forEach((t, j) => { t.textContent = texts[j] || ""; changedTexts.push([t, i]); });
      }
      const grad = at(data.grads[i], k);
      if (grad !== shownGrad[i] && gradTexts[i]) {
        shownGrad[i] = grad;
        gradTexts[i].textContent = grad;
        changedTexts.push([gradTexts[i], i]);
      }
    }
    if (fitted) fitAll(changedTexts);
    label.textContent = data.labels[k];
    caption.textContent = data.captions[k];
    rule.textContent = data.rules[k];
    rule.hidden = !data.rules[k];
    range.value = String(k);
    prev.disabled = k <= 0;
    next.disabled = k >= last;
    root.dataset.step = String(k);
    if (pinned !== null || hovered !== null) openCard(pinned !== null ? pinned : hovered);
    if (model && !fromModel && kernelAlive()) {
      try { model.set("position", k); model.save_changes(); } catch (e) { /* no kernel: stay local */ }
    }
  }

  function openCard(i) {
    const lines = data.cards[i].filter(([, start, end]) => start <= k && (end === null || k < end));
    card.replaceChildren(h("button", {type: "button", class: "ad-card-close", title: "Close", text: "×"}),
                         ...lines.map(([text], n) => h("div", {class: n === 0 ? "ad-card-title" : "ad-card-line",
                                                               text})));
    card.dataset.node = String(i);
    card.hidden = false;
    const g = values[i] || ops[i];
    if (g) {
      stage.style.minHeight = "";
      const box = g.getBoundingClientRect(), frame = stage.getBoundingClientRect();
      const left = Math.min(box.right - frame.left + 8, Math.max(0, frame.width - card.offsetWidth - 4));
      const top = Math.max(0, Math.min(box.top - frame.top, frame.height - card.offsetHeight));
      card.style.left = `${Math.max(0, left)}px`;
      card.style.top = `${top}px`;
      // A card taller than the picture makes room for itself rather than being cut off.
      if (top + card.offsetHeight > frame.height) stage.style.minHeight = `${top + card.offsetHeight + 4}px`;
    }
  }
  function closeCard() { pinned = hovered = null; card.hidden = true; stage.style.minHeight = ""; }
  function nodeOf(event) {
    const g = event.target.closest && event.target.closest("g[data-v], g[data-f]");
    if (!g) return null;
    return g.dataset.v !== undefined ? +g.dataset.v : +g.dataset.f;
  }
  svg.addEventListener("click", (event) => {
    const i = nodeOf(event);
    if (i === null || !data.cards[i]) return;
    pinned = i;
    openCard(i);
  });
  svg.addEventListener("mouseover", (event) => {
    const i = nodeOf(event);
    if (i === null || pinned !== null || !data.cards[i]) return;
    hovered = i;
    openCard(i);
  });
  svg.addEventListener("mouseout", (event) => {
    if (pinned !== null || hovered === null) return;
    const to = event.relatedTarget;
    if (to && to.closest && nodeOf({target: to}) === hovered) return;   // still over the same node
    hovered = null;
    card.hidden = true;
    stage.style.minHeight = "";
  });
  card.addEventListener("click", (event) => { if (event.target.classList.contains("ad-card-close")) closeCard(); });

  // -- zoom and pan: fit the output's width, never below MIN_SCALE; scroll beyond.
  const width = parseFloat(svg.getAttribute("width")) * (svg.getAttribute("width").endsWith("pt") ? 4 / 3 : 1);
  const height = parseFloat(svg.getAttribute("height")) * (svg.getAttribute("height").endsWith("pt") ? 4 / 3 : 1);
  // "auto" fits the width without going below MIN_SCALE (then it scrolls); the Fit
  // button shows the whole graph however small; zooming by hand stops both.
  let scale = 1, fitting = "auto";
  function applyScale(s) {
    scale = Math.max(0.2, Math.min(MAX_SCALE, s));
    svg.setAttribute("width", `${(width * scale).toFixed(1)}px`);
    svg.setAttribute("height", `${(height * scale).toFixed(1)}px`);
    root.dataset.scale = scale.toFixed(3);
    hint.hidden = !(width * scale > viewport.clientWidth + 1);
  }
  function fitWidth() {
    const room = viewport.clientWidth - 4;
    if (room <= 0 || !fitting) return;
    const whole = Math.min(1, room / width);
    applyScale(fitting === "whole" ? whole : Math.max(MIN_SCALE, whole));
  }
  zoomIn.onclick = () => { fitting = false; applyScale(scale * 1.25); };
  zoomOut.onclick = () => { fitting = false; applyScale(scale / 1.25); };
  zoomFit.onclick = () => { fitting = "whole"; fitWidth(); };
  viewport.addEventListener("wheel", (event) => {
    if (!event.ctrlKey) return;
    event.preventDefault();
    fitting = false;
    applyScale(scale * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
  }, {passive: false});
  let drag = null;
  viewport.addEventListener("mousedown", (event) => {
    if (nodeOf(event) !== null || event.button !== 0) return;
    drag = {x: event.clientX, y: event.clientY, left: viewport.scrollLeft, top: viewport.scrollTop};
    viewport.classList.add("ad-panning");
  });
  const onMove = (event) => {
    if (!drag) return;
    viewport.scrollLeft = drag.left - (event.clientX - drag.x);
    viewport.scrollTop = drag.top - (event.clientY - drag.y);
  };
  const onUp = () => { drag = null; viewport.classList.remove("ad-panning"); };
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  const resizing = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => fitWidth()) : null;
  if (resizing) resizing.observe(viewport);

  // -- stepping
  function stop() { if (timer !== null) { clearInterval(timer); timer = null; } play.textContent = "▶ Play"; }
  function move(delta) { stop(); show(k + delta, false); }
  play.onclick = () => {
    if (timer !== null) { stop(); return; }
    if (k >= last) show(0, false);
    play.textContent = "❚❚ Pause";
    timer = setInterval(() => { if (k >= last) stop(); else show(k + 1, false); }, PLAY_INTERVAL_MS);
  };
  prev.onclick = () => move(-1);
  next.onclick = () => move(+1);
  range.addEventListener("input", () => { stop(); show(+range.value, false); });
  // Listened for on the window, before the notebook's own shortcuts (which listen on the
  // document, capturing) can take the arrow keys: only when the focus is in this timeline.
  const onKey = (event) => {
    if (!(event.target instanceof Node) || !root.contains(event.target)) return;
    if (event.key === "Escape") { closeCard(); event.stopPropagation(); return; }
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.stopPropagation();
    event.preventDefault();
    move(event.key === "ArrowRight" ? 1 : -1);
  };
  window.addEventListener("keydown", onKey, true);
  root.addEventListener("click", (event) => {
    if (event.target !== range && !(event.target.closest && event.target.closest("button"))) root.focus();
  });

  show(model ? model.get("position") : 0, true);
  requestAnimationFrame(() => {   // once the SVG is in the page and can be measured
    fitWidth();
    const all = [];
    values.forEach((g, i) => {
      if (!g) return;
      const name = g.querySelector("text.ad-name");
      if (name) all.push([name, i]);
      for (const t of dataTexts[i]) all.push([t, i]);
      if (gradTexts[i]) all.push([gradTexts[i], i]);
    });
    fitAll(all);
    fitted = true;
  });
  let onModel = null;
  if (model) {
    onModel = () => show(model.get("position"), true);
    model.on("change:position", onModel);
  }
  return () => {
    stop();
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
    if (resizing) resizing.disconnect();
    if (model && onModel) model.off("change:position", onModel);
  };
}

function render({model, el}) {
  let unmount = mount(el, model.get("data"), model);
  const remount = () => {      // a new timeline (modules collapsed or expanded)
    unmount();
    el.replaceChildren();
    unmount = mount(el, model.get("data"), model);
  };
  model.on("change:data", remount);
  return () => { model.off("change:data", remount); unmount(); };
}

export default {render};
