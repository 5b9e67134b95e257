// graphspec's model page: draws the graph in the JSON above, folds and unfolds blocks, searches,
// pans and zooms, and shows a clicked node's details. Hand-written (no library): a layered
// layout in time near-linear in the nodes shown, so that even a 10,000-node graph opens.
// Every text from the spec reaches the page through textContent, never as markup.
//
// Test hooks: the URL fragment holds actions run once the page is drawn, in this order:
//   #unfoldall=1&unfold=stage2,stage3&fold=stage3&search=conv&click=NODE
// and <body> gets data-ready="1" and data-visible="N" (nodes drawn) when done.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("graphspec-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var nodes = new Map();
  var groups = new Map();
  var children = new Map(); // group id -> ids of the nodes and groups directly inside it
  DATA.nodes.forEach(function (n) { nodes.set(n.id, n); });
  DATA.groups.forEach(function (g) { groups.set(g.id, g); children.set(g.id, []); });
  DATA.nodes.forEach(function (n) { if (n.parent != null) children.get(n.parent).push(n.id); });
  DATA.groups.forEach(function (g) { if (g.parent != null) children.get(g.parent).push(g.id); });
  var open = new Set();
  DATA.groups.forEach(function (g) { if (g.open) openWithAncestors(g.id); });
  var selected = null;
  var view = { x: 0, y: 0, k: 1 };

  // --- page structure ------------------------------------------------------------------------

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    return e;
  }

  var header = el("header");
  var titleBox = el("div", { "class": "title" });
  titleBox.appendChild(el("h1", null, DATA.diff ? "diff" : DATA.name));
  titleBox.appendChild(el("span", { "class": "file" }, DATA.diff ? DATA.title : DATA.file));
  header.appendChild(titleBox);
  var search = el("input", { type: "search", placeholder: "Search name or layer type (Enter unfolds)", "aria-label": "search" });
  var searchCount = el("span", { "class": "count" });
  header.appendChild(search);
  header.appendChild(searchCount);
  var buttons = el("div", { "class": "buttons" });
  [["Fold all", foldAll], ["Unfold all", unfoldAll], ["Fit", fit]].forEach(function (b) {
    var button = el("button", { type: "button" }, b[0]);
    button.addEventListener("click", b[1]);
    buttons.appendChild(button);
  });
  header.appendChild(buttons);
  header.appendChild(legend());
  document.body.appendChild(header);
  var main = el("main");
  var canvas = svgEl("svg", { "class": "canvas", role: "img", "aria-label": "model graph" });
  var defs = svgEl("defs");
  [["arrow", "#64748b"], ["arrow-removed", "#dc2626"]].forEach(function (a) {
    var marker = svgEl("marker", { id: a[0], viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
    marker.appendChild(svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: a[1] }));
    defs.appendChild(marker);
  });
  canvas.appendChild(defs);
  var viewport = svgEl("g", { "class": "viewport" });
  canvas.appendChild(viewport);
  main.appendChild(canvas);
  var panel = el("aside", { "class": "panel" });
  main.appendChild(panel);
  document.body.appendChild(main);

  function legend() {
    var box = el("div", { "class": "legend" });
    var items = DATA.diff
      ? [["added", "added"], ["removed", "removed"], ["changed", "changed"], ["same", "unchanged"]]
      : [["input", "input"], ["layer", "layer"], ["group", "folded block"], ["shared", "shared layer"], ["output", "output"]];
    items.forEach(function (item) {
      var entry = el("span", { "class": "key key-" + item[0] });
      entry.appendChild(el("i"));
      entry.appendChild(document.createTextNode(item[1]));
      box.appendChild(entry);
    });
    return box;
  }

  // --- folding -------------------------------------------------------------------------------

  function openWithAncestors(id) {
    for (var g = id; g != null; g = groups.get(g).parent) open.add(g);
  }
  function foldAll() { open.clear(); render(); fit(); }
  function unfoldAll() { groups.forEach(function (g, id) { open.add(id); }); render(); fit(); }
  function toggle(id) {
    if (open.has(id)) {
      // Folding a group folds what is inside it too, so that unfolding it again shows one level.
      var stack = [id];
      while (stack.length) {
        var g = stack.pop();
        open.delete(g);
        children.get(g).forEach(function (c) { if (groups.has(c)) stack.push(c); });
      }
    } else {
      openWithAncestors(id);
    }
    render();
  }

  // The node or folded group that stands for a node: its outermost folded group, else itself.
  function representatives() {
    var memo = new Map();
    function ofGroup(id) {
      if (memo.has(id)) return memo.get(id);
      var g = groups.get(id);
      var outer = g.parent != null ? ofGroup(g.parent) : null;
      var result = outer != null ? outer : open.has(id) ? null : id;
      memo.set(id, result);
      return result;
    }
    return function (id) {
      var n = nodes.get(id);
      var r = n && n.parent != null ? ofGroup(n.parent) : null;
      return r != null ? r : id;
    };
  }

  // --- what is drawn -------------------------------------------------------------------------

  function fmt(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "string") return value;
    return JSON.stringify(value);
  }
  function count(n) { return n == null ? "-" : Number(n).toLocaleString("en-US"); }
  function shapeText(shape) { return "(" + shape.map(function (d) { return d == null ? "None" : d; }).join(", ") + (shape.length === 1 ? ",)" : ")"); }

  function nodeLines(n) {
    if (n.kind === "output") {
      var o = n.output || {};
      var lines = ["output " + n.name];
      if (o.loss != null) lines.push("loss " + fmt(o.loss.type || o.loss) + " · weight " + o.weight);
      if (o.target) lines.push("target " + o.target);
      if (o.metrics && o.metrics.length) lines.push("metrics " + o.metrics.map(function (m) { return fmt(m.type || m); }).join(", "));
      return lines;
    }
    var lines2 = [n.name, n.type + (n.calls ? " · shared, " + n.calls + " calls" : "")];
    if (n.kind === "input") lines2[1] = "Input " + shapeText([null].concat(n.args.shape)) + (n.args.dtype !== "float32" ? " " + n.args.dtype : "");
    if (n.shapes) lines2.push(n.shapes.map(function (s) { return s[0] + shapeText(s[1]); }).join(" ") + (n.params ? " · " + count(n.params) + " params" : ""));
    if (n.params_change) lines2.push("params " + count(n.params_change[0]) + " → " + count(n.params_change[1]));
    return lines2;
  }
  function groupLines(g) {
    var what = g.kind === "spec" ? "spec " + g.block : g.block ? "block " + g.block : "group";
    var lines = [g.label, what + " · " + count(g.layers) + " layer" + (g.layers === 1 ? "" : "s")];
    if (g.shapes) lines.push(g.shapes.map(function (s) { return s[0] + shapeText(s[1]); }).join(" "));
    if (g.total_params) lines.push(count(g.total_params) + " params");
    return lines;
  }

  function render() {
    var rep = representatives();
    var items = [];
    var seen = new Map();
    DATA.nodes.forEach(function (n) {
      var r = rep(n.id);
      if (seen.has(r)) return;
      var isGroup = r !== n.id;
      var item = { id: r, group: isGroup, data: isGroup ? groups.get(r) : n };
      item.lines = isGroup ? groupLines(item.data) : nodeLines(n);
      var longest = 0;
      item.lines.forEach(function (l, i) { longest = Math.max(longest, l.length * (i === 0 ? 7.2 : 6.3)); });
      item.w = Math.max(96, Math.min(420, longest + 26));
      item.h = 14 + 16 * item.lines.length;
      seen.set(r, items.length);
      items.push(item);
    });
    var edges = [];
    var edgeIndex = new Map();
    DATA.edges.forEach(function (e) {
      var s = rep(e[0]), t = rep(e[1]);
      if (s === t || !seen.has(s) || !seen.has(t)) return;
      var key = s + "\u0000" + t;
      var removed = e[3] === "removed";
      if (edgeIndex.has(key)) {
        var known = edges[edgeIndex.get(key)];
        known.removed = known.removed && removed;
        if (known.label !== e[2]) known.label = "";
        return;
      }
      edgeIndex.set(key, edges.length);
      edges.push({ s: seen.get(s), t: seen.get(t), label: e[2] || "", removed: removed });
    });
    layout(items, edges);
    draw(items, edges);
    document.body.setAttribute("data-visible", String(items.length));
  }

  // --- layout: ranks by longest path, dummy nodes on long edges, barycentre ordering --------

  function layout(items, edges) {
    var n = items.length, i, j, r;
    var succ = [], pred = [];
    for (i = 0; i < n; i++) { succ.push([]); pred.push([]); }
    edges.forEach(function (e) { succ[e.s].push(e.t); pred[e.t].push(e.s); });
    // A topological order that keeps file order among ready nodes; nodes on a cycle (folding
    // hand-named groups can make one) follow in file order, their back edges left out of ranks.
    var indeg = pred.map(function (p) { return p.length; });
    var queue = [], pos = new Array(n).fill(-1), topo = [];
    for (i = 0; i < n; i++) if (!indeg[i]) queue.push(i);
    for (var head = 0; head < queue.length; head++) {
      i = queue[head]; pos[i] = topo.length; topo.push(i);
      succ[i].forEach(function (t) { if (--indeg[t] === 0) queue.push(t); });
    }
    for (i = 0; i < n; i++) if (pos[i] < 0) { pos[i] = topo.length; topo.push(i); }
    var rank = new Array(n).fill(0);
    topo.forEach(function (v) { succ[v].forEach(function (t) { if (pos[t] > pos[v]) rank[t] = Math.max(rank[t], rank[v] + 1); }); });
    // A source (an input, say) sits just above the first node that reads it, not at the top.
    for (j = topo.length - 1; j >= 0; j--) {
      i = topo[j];
      if (pred[i].length || !succ[i].length) continue;
      var lowest = Infinity;
      succ[i].forEach(function (t) { if (pos[t] > pos[i]) lowest = Math.min(lowest, rank[t]); });
      if (lowest !== Infinity) rank[i] = Math.max(0, lowest - 1);
    }
    var maxRank = 0;
    for (i = 0; i < n; i++) maxRank = Math.max(maxRank, rank[i]);
    // Long edges go through one dummy per rank they cross, so that they are routed around
    // nodes; past a budget (a graph of very long skips), they are drawn straight instead.
    var span = 0;
    edges.forEach(function (e) { span += Math.max(0, rank[e.t] - rank[e.s] - 1); });
    var dummies = span <= 20 * n + 2000;
    var vx = [], vw = [], vrank = [], vpred = [], vsucc = [], key = [];
    for (i = 0; i < n; i++) { vw.push(items[i].w); vrank.push(rank[i]); vpred.push([]); vsucc.push([]); key.push(pos[i]); }
    edges.forEach(function (e) {
      e.path = [e.s];
      if (rank[e.t] <= rank[e.s] || !dummies) { e.path.push(e.t); return; }
      var previous = e.s;
      for (r = rank[e.s] + 1; r < rank[e.t]; r++) {
        var d = vw.length;
        vw.push(8); vrank.push(r); vpred.push([previous]); vsucc.push([]); key.push(pos[e.s] + 0.5);
        vsucc[previous].push(d);
        e.path.push(d);
        previous = d;
      }
      vsucc[previous].push(e.t); vpred[e.t].push(previous);
      e.path.push(e.t);
    });
    var total = vw.length;
    var layers = [];
    for (r = 0; r <= maxRank; r++) layers.push([]);
    var ids = [];
    for (i = 0; i < total; i++) ids.push(i);
    ids.sort(function (a, b) { return key[a] - key[b]; });
    ids.forEach(function (v) { layers[vrank[v]].push(v); });
    var order = new Array(total);
    function number(layer) { layer.forEach(function (v, k) { order[v] = k; }); }
    layers.forEach(number);
    function sweep(down) {
      var start = down ? 1 : maxRank - 1, end = down ? maxRank + 1 : -1, step = down ? 1 : -1;
      for (r = start; r !== end; r += step) {
        var layer = layers[r];
        var bary = new Map();
        layer.forEach(function (v) {
          var near = down ? vpred[v] : vsucc[v];
          var sum = 0, c = 0;
          near.forEach(function (u) { if (vrank[u] === r - step) { sum += order[u]; c++; } });
          bary.set(v, c ? sum / c : order[v] * (layers[r - step] ? layers[r - step].length / Math.max(1, layer.length) : 1));
        });
        layer.sort(function (a, b) { return bary.get(a) - bary.get(b) || order[a] - order[b]; });
        number(layer);
      }
    }
    for (var pass = 0; pass < 4; pass++) { sweep(true); sweep(false); }
    sweep(true);
    // x: each node as near the mean of its neighbours above (or below) as its row allows.
    var GAP = 26;
    for (i = 0; i < total; i++) vx.push(0);
    layers.forEach(function (layer) {
      var x = 0;
      layer.forEach(function (v, k) { if (k) x += (vw[layer[k - 1]] + vw[v]) / 2 + GAP; vx[v] = x; });
    });
    function place(layer, desired) {
      var m = layer.length, left = new Array(m), right = new Array(m), k;
      function sep(a, b) { return (vw[layer[a]] + vw[layer[b]]) / 2 + GAP; }
      for (k = 0; k < m; k++) left[k] = k ? Math.max(desired[k], left[k - 1] + sep(k - 1, k)) : desired[k];
      for (k = m - 1; k >= 0; k--) right[k] = k < m - 1 ? Math.min(desired[k], right[k + 1] - sep(k, k + 1)) : desired[k];
      for (k = 0; k < m; k++) {
        var x = (left[k] + right[k]) / 2;
        if (k) x = Math.max(x, vx[layer[k - 1]] + sep(k - 1, k));
        vx[layer[k]] = x;
      }
    }
    function align(down) {
      var start = down ? 1 : maxRank - 1, end = down ? maxRank + 1 : -1, step = down ? 1 : -1;
      for (r = start; r !== end; r += step) {
        var layer = layers[r];
        place(layer, layer.map(function (v) {
          var near = down ? vpred[v] : vsucc[v];
          var sum = 0, c = 0;
          near.forEach(function (u) { if (vrank[u] === r - step) { sum += vx[u]; c++; } });
          return c ? sum / c : vx[v];
        }));
      }
    }
    for (pass = 0; pass < 3; pass++) { align(true); align(false); }
    align(true);
    var minX = Infinity;
    for (i = 0; i < total; i++) minX = Math.min(minX, vx[i] - vw[i] / 2);
    // Room above a row for the labels of the unfolded groups that start on it, and below it for
    // the borders of those that end on it.
    var top = new Map(), bottom = new Map();
    for (i = 0; i < n; i++) {
      for (var g = items[i].data.parent; g != null; g = groups.get(g).parent) {
        if (!open.has(g)) continue;
        top.set(g, Math.min(top.has(g) ? top.get(g) : Infinity, rank[i]));
        bottom.set(g, Math.max(bottom.has(g) ? bottom.get(g) : -1, rank[i]));
      }
    }
    var above = new Array(maxRank + 1).fill(0), below = new Array(maxRank + 1).fill(0);
    top.forEach(function (rk) { above[rk]++; });
    bottom.forEach(function (rk) { below[rk]++; });
    var heights = layers.map(function (layer) {
      var h = 0;
      layer.forEach(function (v) { if (v < n) h = Math.max(h, items[v].h); });
      return h || 10;
    });
    var rowY = [], y = 40;
    var rowTop = [], rowBottom = [];
    heights.forEach(function (h, rk) {
      y += 24 * above[rk];
      rowTop.push(y); rowY.push(y + h / 2); rowBottom.push(y + h);
      y += h + 40 + 12 * below[rk];
    });
    // Each unfolded group's box: as many label rows above its first row as groups start there
    // inside it, so that nested labels stack instead of overlapping.
    clusterBoxes = new Map();
    var startDepth = function (g) { var d = 0; for (var p = groups.get(g).parent; p != null; p = groups.get(p).parent) d++; return d; };
    var byTop = new Map(), byBottom = new Map();
    top.forEach(function (rk, g) { if (!byTop.has(rk)) byTop.set(rk, []); byTop.get(rk).push(g); });
    bottom.forEach(function (rk, g) { if (!byBottom.has(rk)) byBottom.set(rk, []); byBottom.get(rk).push(g); });
    top.forEach(function (rk, g) {
      var d = startDepth(g);
      var levelTop = byTop.get(rk).filter(function (o) { return startDepth(o) > d; }).length;
      var levelBottom = byBottom.get(bottom.get(g)).filter(function (o) { return startDepth(o) > d; }).length;
      clusterBoxes.set(g, { top: rowTop[rk] - 24 * (levelTop + 1) + 2, bottom: rowBottom[bottom.get(g)] + 10 + 12 * levelBottom, side: 10 + 8 * Math.max(levelTop, levelBottom) });
    });
    var vy = vrank.map(function (rk) { return rowY[rk]; });
    items.forEach(function (item, k) { item.x = vx[k] - minX + 40; item.y = vy[k]; });
    edges.forEach(function (e) {
      e.points = e.path.map(function (v, k) {
        var x = vx[v] - minX + 40, yy = vy[v];
        if (k === 0) yy += items[v].h / 2;
        else if (k === e.path.length - 1) yy -= items[v].h / 2;
        return [x, yy];
      });
    });
  }

  // --- drawing -------------------------------------------------------------------------------

  function pathOf(points) {
    var d = "M" + points[0][0].toFixed(1) + "," + points[0][1].toFixed(1);
    for (var k = 1; k < points.length; k++) {
      var a = points[k - 1], b = points[k], dy = (b[1] - a[1]) / 2;
      d += " C" + a[0].toFixed(1) + "," + (a[1] + dy).toFixed(1) + " " + b[0].toFixed(1) + "," + (b[1] - dy).toFixed(1) + " " + b[0].toFixed(1) + "," + b[1].toFixed(1);
    }
    return d;
  }

  var drawn = new Map(); // id -> element, for search and selection
  var clusterBoxes = new Map(); // unfolded group id -> {top, bottom, side}, from the layout

  function draw(items, edges) {
    while (viewport.firstChild) viewport.removeChild(viewport.firstChild);
    drawn.clear();
    var boxes = svgEl("g", { "class": "clusters" });
    var lines = svgEl("g", { "class": "edges" });
    var shapes = svgEl("g", { "class": "nodes" });
    viewport.appendChild(boxes); viewport.appendChild(lines); viewport.appendChild(shapes);
    // An unfolded group is a box around what is drawn of it, deepest last (on top).
    var bounds = new Map();
    items.forEach(function (item) {
      var parent = item.group ? item.data.parent : item.data.parent;
      for (var g = parent; g != null; g = groups.get(g).parent) {
        var b = bounds.get(g) || [Infinity, Infinity, -Infinity, -Infinity];
        b[0] = Math.min(b[0], item.x - item.w / 2); b[1] = Math.min(b[1], item.y - item.h / 2);
        b[2] = Math.max(b[2], item.x + item.w / 2); b[3] = Math.max(b[3], item.y + item.h / 2);
        bounds.set(g, b);
      }
    });
    var depth = function (g) { var d = 0; for (var p = groups.get(g).parent; p != null; p = groups.get(p).parent) d++; return d; };
    var depthOf = new Map();
    bounds.forEach(function (b, g) { depthOf.set(g, depth(g)); });
    var maxDepth = 0;
    depthOf.forEach(function (d) { maxDepth = Math.max(maxDepth, d); });
    Array.from(bounds.keys()).sort(function (a, b) { return depthOf.get(a) - depthOf.get(b); }).forEach(function (g) {
      var b = bounds.get(g), box0 = clusterBoxes.get(g) || { top: b[1] - 26, bottom: b[3] + 10, side: 10 }, pad = box0.side, group = groups.get(g);
      var box = svgEl("g", { "class": "cluster" + (group.change ? " change-" + group.change : ""), "data-block": g, "data-open": "1" });
      if (group.change) box.setAttribute("data-change", group.change);
      box.appendChild(svgEl("rect", { x: b[0] - pad, y: box0.top, width: b[2] - b[0] + 2 * pad, height: box0.bottom - box0.top, rx: 10 }));
      var label = svgEl("text", { x: b[0] - pad + 8, y: box0.top + 15, "class": "cluster-label" }, "▾ " + group.label + (group.block && group.kind !== "repeat" ? "  (" + (group.kind === "spec" ? "spec " : "block ") + group.block + ")" : ""));
      label.addEventListener("click", function (ev) { ev.stopPropagation(); toggle(g); });
      box.appendChild(label);
      boxes.appendChild(box);
      drawn.set(g, box);
    });
    edges.forEach(function (e) {
      var path = svgEl("path", { d: pathOf(e.points), "class": "edge" + (e.removed ? " removed" : ""), "marker-end": e.removed ? "url(#arrow-removed)" : "url(#arrow)" });
      lines.appendChild(path);
      if (e.label) {
        var mid = e.points[Math.floor(e.points.length / 2)];
        var prev = e.points[Math.floor(e.points.length / 2) - 1] || mid;
        lines.appendChild(svgEl("text", { x: (mid[0] + prev[0]) / 2 + 5, y: (mid[1] + prev[1]) / 2, "class": "edge-label" }, e.label));
      }
    });
    items.forEach(function (item) {
      var d = item.data;
      var kind = item.group ? "group" : d.kind;
      var cls = "node kind-" + kind + ((d.shared || d.share) ? " shared" : "") + (d.change ? " change-" + d.change : "");
      var g = svgEl("g", { "class": cls, "data-node": item.id, transform: "translate(" + (item.x - item.w / 2).toFixed(1) + "," + (item.y - item.h / 2).toFixed(1) + ")", tabindex: "0" });
      if (item.group) { g.setAttribute("data-block", item.id); g.setAttribute("data-open", "0"); }
      if (d.change) g.setAttribute("data-change", d.change);
      if (item.group) g.appendChild(svgEl("rect", { "class": "stack", x: 5, y: 5, width: item.w, height: item.h, rx: 7 }));
      g.appendChild(svgEl("rect", { "class": "box", width: item.w, height: item.h, rx: kind === "input" || kind === "output" ? 14 : 7 }));
      if (d.shared || d.share) g.appendChild(svgEl("rect", { "class": "inner", x: 3, y: 3, width: item.w - 6, height: item.h - 6, rx: 5 }));
      item.lines.forEach(function (line, k) {
        g.appendChild(svgEl("text", { x: item.w / 2, y: 20 + 16 * k, "class": k === 0 ? "name" : "info" }, line));
      });
      g.appendChild(svgEl("title", null, item.group ? "click to unfold " + d.label : d.name));
      g.addEventListener("click", function (ev) {
        ev.stopPropagation();
        if (item.group) { toggle(item.id); select(item.id); } else select(item.id);
      });
      // Keyboard users reach nodes with Tab; Enter or Space acts as a click.
      g.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); g.dispatchEvent(new MouseEvent("click")); }
      });
      shapes.appendChild(g);
      drawn.set(item.id, g);
    });
    if (selected && drawn.has(selected)) drawn.get(selected).classList.add("selected");
    applySearch();
  }

  // --- pan and zoom --------------------------------------------------------------------------

  function setView() { viewport.setAttribute("transform", "translate(" + view.x.toFixed(1) + "," + view.y.toFixed(1) + ") scale(" + view.k.toFixed(4) + ")"); }
  function fit() {
    var box = viewport.getBBox ? viewport.getBBox() : { x: 0, y: 0, width: 800, height: 600 };
    var w = canvas.clientWidth || 1000, h = canvas.clientHeight || 700;
    if (!box.width || !box.height) return;
    // Small graphs are not blown up past their natural size; large ones start readable at the
    // top rather than as a speck in the middle.
    // A diff is read whole (where are the changes?); a model from the top, at a readable size.
    view.k = Math.min(1.1, w / (box.width + 60), Math.max(h / (box.height + 60), DATA.diff ? 0.55 : 0.7));
    view.k = Math.max(view.k, 0.3);
    view.x = (w - box.width * view.k) / 2 - box.x * view.k;
    if (view.x < 10) view.x = 10 - box.x * view.k;
    view.y = box.height * view.k < h ? (h - box.height * view.k) / 2 - box.y * view.k : 20 - box.y * view.k;
    setView();
  }
  // Centre the view on a node; with `lazily`, only when it is not already in sight.
  function centerOn(id, lazily) {
    var e = drawn.get(id);
    if (!e || !e.getBBox) return;
    var b = e.getBBox(), m = e.transform && e.transform.baseVal.numberOfItems ? e.transform.baseVal.getItem(0).matrix : { e: 0, f: 0 };
    var w = canvas.clientWidth || 1000, h = canvas.clientHeight || 700;
    var sx = (m.e + b.x) * view.k + view.x, sy = (m.f + b.y) * view.k + view.y;
    if (lazily && sx >= 0 && sy >= 0 && sx + b.width * view.k <= w && sy + b.height * view.k <= h) return;
    view.x = w / 2 - (m.e + b.x + b.width / 2) * view.k;
    view.y = h / 2 - (m.f + b.y + b.height / 2) * view.k;
    // No empty half-screen below the graph's end, nor above its start.
    var all = viewport.getBBox();
    view.y = Math.max(view.y, h - 30 - (all.y + all.height) * view.k);
    view.y = Math.min(view.y, 30 - all.y * view.k);
    setView();
  }
  var drag = null;
  canvas.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX - view.x, y: ev.clientY - view.y }; canvas.classList.add("dragging"); });
  window.addEventListener("mousemove", function (ev) { if (drag) { view.x = ev.clientX - drag.x; view.y = ev.clientY - drag.y; setView(); } });
  window.addEventListener("mouseup", function () { drag = null; canvas.classList.remove("dragging"); });
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var rect = canvas.getBoundingClientRect(), px = ev.clientX - rect.left, py = ev.clientY - rect.top;
    var k = Math.max(0.02, Math.min(4, view.k * Math.exp(-ev.deltaY * 0.0015)));
    view.x = px - (px - view.x) * k / view.k; view.y = py - (py - view.y) * k / view.k; view.k = k;
    setView();
  }, { passive: false });

  // --- search --------------------------------------------------------------------------------

  function matches(query) {
    var q = query.trim().toLowerCase(), found = [];
    if (!q) return found;
    DATA.nodes.forEach(function (n) {
      if (n.name.toLowerCase().indexOf(q) >= 0 || n.id.toLowerCase().indexOf(q) >= 0 || (n.type || "").toLowerCase().indexOf(q) >= 0) found.push(n.id);
    });
    return found;
  }
  function applySearch() {
    var found = matches(search.value);
    canvas.classList.toggle("searching", found.length > 0 || search.value.trim() !== "");
    drawn.forEach(function (e) { e.classList.remove("match"); });
    var rep = representatives();
    found.forEach(function (id) {
      var r = rep(id);
      if (drawn.has(r)) drawn.get(r).classList.add("match");
      // An unfolded group that holds a match is not dimmed either.
      for (var g = nodes.get(id).parent; g != null; g = groups.get(g).parent) if (drawn.has(g) && open.has(g)) drawn.get(g).classList.add("match");
    });
    searchCount.textContent = search.value.trim() ? found.length + " match" + (found.length === 1 ? "" : "es") : "";
    return found;
  }
  search.addEventListener("input", applySearch);
  search.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") return;
    var found = matches(search.value);
    found.slice(0, 500).forEach(function (id) { var p = nodes.get(id).parent; if (p != null) openWithAncestors(p); });
    render();
    if (found.length) { select(found[0]); centerOn(found[0]); }
  });

  // --- details -------------------------------------------------------------------------------

  function section(title) { panel.appendChild(el("h3", null, title)); }
  function table(rows) {
    var t = el("table");
    rows.forEach(function (row) {
      var tr = el("tr");
      tr.appendChild(el("th", null, row[0]));
      var td = el("td");
      if (row.length > 2) {
        td.appendChild(el("span", { "class": "old" }, row[1]));
        td.appendChild(document.createTextNode(" → "));
        td.appendChild(el("span", { "class": "new" }, row[2]));
      } else td.textContent = row[1];
      tr.appendChild(td);
      t.appendChild(tr);
    });
    panel.appendChild(t);
  }
  function clearPanel() { while (panel.firstChild) panel.removeChild(panel.firstChild); }

  function overview() {
    clearPanel();
    panel.appendChild(el("h2", null, DATA.name));
    if (DATA.doc) panel.appendChild(el("p", { "class": "doc" }, DATA.doc));
    var layers = DATA.nodes.filter(function (n) { return n.kind === "layer" || n.kind === "model"; }).length;
    var rows = [["file", DATA.file], ["layer nodes", count(layers)], ["blocks, repeats, nested specs", count(DATA.groups.length)]];
    if (DATA.total_params != null) rows.push(["parameters", count(DATA.total_params)]);
    if (DATA.diff && DATA.diff.params) rows.push(["parameters", count(DATA.diff.params[0]), count(DATA.diff.params[1])]);
    table(rows);
    if (DATA.stages) {
      section("Fine-tuning stages");
      var stages = el("ol");
      DATA.stages.forEach(function (s) { stages.appendChild(el("li", null, s)); });
      panel.appendChild(stages);
    }
    if (DATA.diff) {
      section("What changed");
      panel.appendChild(el("pre", { "class": "summary" }, DATA.diff.summary || "no differences\n"));
    }
    panel.appendChild(el("p", { "class": "hint" }, "Click a node for its details, a folded block to unfold it, a box's label to fold it. Drag to pan, scroll to zoom."));
  }

  function select(id) {
    if (selected && drawn.has(selected)) drawn.get(selected).classList.remove("selected");
    selected = id;
    if (drawn.has(id)) drawn.get(id).classList.add("selected");
    clearPanel();
    var n = nodes.get(id), g = groups.get(id);
    panel.setAttribute("data-selected", id);
    if (!n && g) return showGroup(g);
    if (!n) return overview();
    panel.appendChild(el("h2", null, n.name));
    var badge = el("p", { "class": "type" }, n.kind === "output" ? "named output" : n.type);
    panel.appendChild(badge);
    if (n.change) panel.appendChild(el("p", { "class": "badge change-" + n.change }, n.change));
    if (n.doc) panel.appendChild(el("p", { "class": "doc" }, n.doc));
    if (n.changes) { section("Changes"); table(n.changes.map(function (c) { return [c[0], fmt(c[1]), fmt(c[2])]; })); }
    if (n.args) { section(n.kind === "input" ? "Input" : "Arguments"); table(Object.keys(n.args).map(function (k) { return [k, fmt(n.args[k])]; })); }
    if (n.output) {
      section("Output");
      table([["loss", fmt(n.output.loss)], ["weight", String(n.output.weight)], ["metrics", n.output.metrics && n.output.metrics.length ? n.output.metrics.map(fmt).join(", ") : "-"], ["target", n.output.target || "data"], ["from", n.output.from || n.name]]);
    }
    if (n.reads !== undefined) { section("Reads"); table([["in", fmt(n.reads)]].concat(n.call ? [["call", fmt(n.call)]] : [])); }
    if (n.stages) { section("Fine-tuning stages"); table(n.stages.map(function (s, k) { return ["stage " + (k + 1), s]; })); }
    if (n.shared) { section("Shared layer"); panel.appendChild(el("p", null, n.shared)); }
    if (n.shapes || n.params != null || n.params_change) {
      section("Shapes and parameters");
      var rows = [];
      (n.shapes || []).forEach(function (s) { rows.push(["output" + s[0], shapeText(s[1])]); });
      if (n.params != null) rows.push(["parameters", count(n.params)]);
      if (n.params_change) rows.push(["parameters", count(n.params_change[0]), count(n.params_change[1])]);
      table(rows);
    }
    if (n.origin) { section("From the block use"); var ul = el("ul"); n.origin.forEach(function (o) { ul.appendChild(el("li", null, o)); }); panel.appendChild(ul); }
    if (n.source) {
      section("YAML");
      panel.appendChild(el("p", { "class": "where" }, n.source.file + ":" + n.source.line));
      var pre = el("pre", { "class": "yaml" });
      n.source.text.forEach(function (line, k) {
        var row = el("span", { "class": "yaml-line", "data-line": String(n.source.line + k) });
        row.appendChild(el("span", { "class": "ln" }, String(n.source.line + k)));
        row.appendChild(document.createTextNode(line + "\n"));
        pre.appendChild(row);
      });
      panel.appendChild(pre);
    }
  }

  function showGroup(g) {
    panel.appendChild(el("h2", null, g.label));
    panel.appendChild(el("p", { "class": "type" }, { spec: "nested spec", repeat: "repeated block", copy: "one copy of a repeated block", block: "block use", group: "nodes named alike" }[g.kind]));
    if (g.change) panel.appendChild(el("p", { "class": "badge change-" + g.change }, g.change));
    var rows = [];
    if (g.block) rows.push([g.kind === "spec" ? "spec file" : "block", g.block]);
    if (g.where) rows.push(["used at", g.where]);
    rows.push(["layer nodes", count(g.layers)]);
    if (g.total_params) rows.push(["parameters", count(g.total_params)]);
    table(rows);
    if (g.changes) { section("Changes"); table(g.changes.map(function (c) { return [c[0], fmt(c[1]), fmt(c[2])]; })); }
    if (g.stages) { section("Fine-tuning stages"); table(g.stages.map(function (s, k) { return ["stage " + (k + 1), s]; })); }
    var button = el("button", { type: "button" }, open.has(g.id) ? "Fold" : "Unfold");
    button.addEventListener("click", function () { toggle(g.id); select(g.id); });
    panel.appendChild(button);
  }

  canvas.addEventListener("click", function (ev) { if (ev.target === canvas) { if (selected && drawn.has(selected)) drawn.get(selected).classList.remove("selected"); selected = null; overview(); } });

  // --- start ---------------------------------------------------------------------------------

  var actions = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    if (!part) return;
    var eq = part.indexOf("=");
    actions[decodeURIComponent(part.slice(0, eq < 0 ? part.length : eq))] = eq < 0 ? "1" : decodeURIComponent(part.slice(eq + 1));
  });
  if (actions.unfoldall) groups.forEach(function (g, id) { open.add(id); });
  if (actions.unfold) actions.unfold.split(",").forEach(function (id) { if (groups.has(id)) openWithAncestors(id); });
  if (actions.fold) actions.fold.split(",").forEach(function (id) { open.delete(id); });
  if (actions.search) search.value = actions.search;
  overview();
  render();
  fit();
  if (actions.click) {
    var target = nodes.get(actions.click);
    if (target && target.parent != null && !drawn.has(actions.click)) { openWithAncestors(target.parent); render(); fit(); }
    if (groups.has(actions.click) && !open.has(actions.click) && drawn.has(actions.click)) toggle(actions.click);
    select(actions.click);
    centerOn(actions.click, true);
  }
  document.body.setAttribute("data-ready", "1");
})();
