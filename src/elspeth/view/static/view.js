// Elspeth's run viewer. No framework and no build step: the server pages and filters, so the
// page only draws what it is sent. Every value from the run is put into the page as text
// (textContent, never innerHTML), so an answer holding <script> shows as those characters.
// The view's state lives in the URL's fragment, so a view can be linked (with its token).

const token = new URLSearchParams(location.search).get("token") || "";
const FILTERS = ["mode", "search", "regex", "expression", "experiment", "status", "score", "low", "high",
  "pair_variant", "pair_x", "pair_y"];
const PAIR = ["pair_variant", "pair_x", "pair_y"];
const PAGE = 50;
const COLOURS = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490"];
let summary = null;
let offset = 0;

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

async function api(path, params = {}) {
  const query = new URLSearchParams(params);
  const response = await fetch(`${path}?${query}`, { headers: { "X-Elspeth-Token": token } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function state() {
  return new URLSearchParams(location.hash.slice(1));
}

function setState(values) {
  const next = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) if (value !== "" && value != null) next.set(name, value);
  history.replaceState(null, "", `${location.pathname}${location.search}#${next}`);
}

function filterValues() {
  const values = {};
  for (const name of FILTERS) {
    const field = $(name);
    values[name] = field.type === "checkbox" ? (field.checked ? "1" : "") : field.value.trim();
  }
  if (!values.pair_variant) for (const name of PAIR) delete values[name];
  return values;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function drawBanners() {
  for (const id of ["banner-top", "banner-bottom"]) {
    const banner = $(id);
    banner.textContent = `${summary.banner} · Run status: ${summary.runs.map((r) => r.status).join(" / ")}`;
    banner.style.background = summary.colours.background;
    banner.style.color = summary.colours.foreground;
  }
  document.title = `${summary.banner}: ${summary.runs.map((r) => r.suite).join(" vs ")} (Elspeth)`;
}

function fillSelect(select, names) {
  for (const name of names) select.append(element("option", { value: name }, name));
}

function formatNumber(value) {
  if (value == null) return "";
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

function statusBadge(status) {
  return element("span", { class: `status status-${status}` }, status);
}

function drawRows(page) {
  const head = $("table").tHead;
  const body = $("table").tBodies[0];
  head.replaceChildren(element("tr", {},
    element("th", {}, "row"),
    ...summary.inputs.map((name) => element("th", {}, name)),
    ...summary.experiments.map((name) => element("th", {}, name === summary.baseline ? `${name} (baseline)` : name))));
  body.replaceChildren(...page.rows.map((row) => {
    const tr = element("tr", { "data-row": row.key._row, "data-repeat": row.key._repeat ?? 0 },
      element("td", {}, row.key._repeat == null ? row.key._row : `${row.key._row}.${row.key._repeat}`),
      ...summary.inputs.map((name) => element("td", { class: "input", title: String(row.inputs[name] ?? "") }, row.inputs[name])),
      ...summary.experiments.map((name) => drawCell(row.cells[name])));
    tr.addEventListener("click", () => openDetail(row.key._row, row.key._repeat ?? 0));
    return tr;
  }));
  const last = Math.min(page.offset + page.rows.length, page.total);
  $("count").textContent = `${page.total} of ${page.of} rows match; showing ${page.total ? page.offset + 1 : 0}–${last}`;
  $("previous").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
}

function drawCell(cell) {
  const td = element("td", { class: "cell" }, statusBadge(cell.status));
  for (const reason of cell.reasons || []) td.append(element("div", { class: "reason" }, reason));
  for (const [criterion, answer] of Object.entries(cell.answers)) {
    if (answer == null) continue;
    td.append(element("div", { class: "answer" }, Object.keys(cell.answers).length > 1 ? `${criterion}: ${answer}` : answer));
  }
  const scores = Object.entries(cell.scores).filter(([, value]) => value != null);
  if (scores.length) {
    td.append(element("div", { class: "scores" }, ...scores.map(([name, value]) => {
      const delta = cell.deltas[name];
      const span = element("span", {}, `${name} ${formatNumber(value)}`);
      if (delta) span.append(element("span", { class: delta > 0 ? "delta-up" : "delta-down" }, ` (${delta > 0 ? "+" : ""}${formatNumber(delta)})`));
      span.append(" ");
      return span;
    })));
  }
  const grades = Object.entries(cell.grades).filter(([, value]) => value != null);
  if (grades.length) td.append(element("div", {}, grades.map(([name, value]) => `${name}: ${value}`).join(", ")));
  return td;
}

async function loadRows() {
  const values = filterValues();
  setState({ ...values, offset, tab: "rows", row: state().get("row") || "" });
  try {
    const page = await api("/api/rows", { ...values, offset, limit: PAGE });
    showError("");
    drawRows(page);
  } catch (error) {
    showError(error.message);
  }
  const csv = new URLSearchParams({ ...values, token });
  $("csv").href = `/api/rows.csv?${csv}`;
}

async function openDetail(row, repeat) {
  const detail = await api("/api/row", { row, repeat });
  const hash = state();
  hash.set("row", repeat ? `${row}.${repeat}` : String(row));
  history.replaceState(null, "", `${location.pathname}${location.search}#${hash}`);
  const body = $("detail-body");
  body.replaceChildren(element("h2", {}, `Row ${row}${repeat ? `, repeat ${repeat}` : ""}`));
  body.append(element("h3", {}, "Inputs"), keyValues(detail.inputs));
  for (const [name, experiment] of Object.entries(detail.experiments)) {
    const section = element("section", { class: "experiment", "data-experiment": name },
      element("h3", {}, name === summary.baseline ? `${name} (baseline) ` : `${name} `, statusBadge(experiment.status)));
    for (const criterion of summary.criteria) {
      const answer = experiment.columns[`${criterion}_response`];
      if (answer == null) continue;
      section.append(element("h4", {}, `${criterion}: response`), element("pre", { class: "response" }, answer));
      if (name !== summary.baseline) {
        const button = element("button", { type: "button", class: "diff" }, "word diff against the baseline");
        const target = element("pre", { class: "diff-out", hidden: "" });
        button.addEventListener("click", async () => {
          const diff = await api("/api/diff", { row, repeat, experiment: name, criterion });
          target.replaceChildren(...diff.runs.map(([kind, text]) => element("span", { class: `diff-${kind}` }, text)));
          target.hidden = false;
        });
        section.append(button, target);
      }
    }
    section.append(element("h4", {}, "All columns"), keyValues(experiment.columns));
    section.append(element("h4", {}, `Audit events (${experiment.events.length})`),
      ...experiment.events.map((event) => element("details", { class: "event" },
        element("summary", {}, eventLine(event)),
        element("pre", {}, JSON.stringify(event, null, 1)))));
    body.append(section);
  }
  $("detail").hidden = false;
}

function eventLine(event) {
  const parts = [event.event, event.criterion ?? event.judge, event.outcome ?? event.grade];
  if (event.attempt_count > 1) parts.push(`${event.attempt_count} attempts`);
  if (event.cached) parts.push("cached");
  if (event.latency_ms != null) parts.push(`${event.latency_ms} ms`);
  if (event.error_message) parts.push(event.error_message);
  return parts.filter((part) => part != null).join(" · ");
}

function keyValues(values) {
  return element("table", { class: "key-values" }, element("tbody", {},
    ...Object.entries(values).map(([name, value]) => element("tr", {}, element("th", {}, name), element("td", {}, element("pre", {}, value))))));
}

async function drawCharts() {
  const charts = $("charts");
  charts.replaceChildren();
  for (const score of summary.scores) {
    const histogram = await api("/api/histogram", { score });
    charts.append(drawHistogram(histogram));
  }
  for (const score of summary.scores) {
    for (const variant of summary.experiments.slice(1)) {
      charts.append(drawScatter(await api("/api/scatter", { score, variant })));
    }
  }
}

function drawScatter(scatter) {
  const size = 170;
  const pad = 28;
  const values = scatter.points.flatMap(([x, y]) => [x, y]);
  const margin = values.length ? (Math.max(...values) - Math.min(...values)) / 10 || 0.5 : 0.5;
  const low = values.length ? Math.min(...values) - margin : 0;
  const high = values.length ? Math.max(...values) + margin : 1;
  const place = (value) => pad + ((value - low) / (high - low || 1)) * (size - pad - 8);
  const most = Math.max(1, ...scatter.points.map((point) => point[2]));
  const chart = svg("svg", { width: size, height: size, role: "img",
    "aria-label": `${scatter.score}: ${summary.baseline} against ${scatter.variant}` });
  chart.append(svg("line", { x1: place(low), y1: size - place(low), x2: place(high), y2: size - place(high), stroke: "#9ca3af" }));
  for (const [x, y, count] of scatter.points) {
    const point = svg("circle", { class: "point", cx: place(x), cy: size - place(y), r: 2 + 6 * Math.sqrt(count / most),
      fill: "#1d4ed8", "fill-opacity": 0.6, "data-x": x, "data-y": y, "data-count": count });
    const title = svg("title");
    title.textContent = `${count} rows: ${summary.baseline} ${formatNumber(x)}, ${scatter.variant} ${formatNumber(y)}`;
    point.append(title);
    point.addEventListener("click", () => {
      $("score").value = scatter.score;
      $("pair_variant").value = scatter.variant;
      $("pair_x").value = String(x);
      $("pair_y").value = String(y);
      offset = 0;
      loadRows();
    });
    chart.append(point);
  }
  const axes = svg("text", { x: pad, y: size - 4, "font-size": 10 });
  axes.textContent = `x: ${summary.baseline}, y: ${scatter.variant}`;
  chart.append(axes);
  return element("figure", { class: "chart scatter", "data-score": scatter.score, "data-variant": scatter.variant },
    element("figcaption", {}, `${scatter.score}: ${scatter.variant} against the baseline`), chart);
}

function drawForest(comparison) {
  const rows = comparison.rows.filter((row) => row.estimate != null);
  const bounds = rows.flatMap((row) => [row.estimate, row.low ?? row.estimate, row.high ?? row.estimate]);
  const low = Math.min(...bounds, 0);
  const high = Math.max(...bounds, 0);
  const width = 560;
  const left = 220;
  const place = (value) => left + ((value - low) / (high - low || 1)) * (width - left - 20);
  const chart = svg("svg", { width, height: 24 * rows.length + 24, role: "img",
    "aria-label": `${comparison.comparison}: ${comparison.variant} against the baseline` });
  chart.append(svg("line", { x1: place(0), y1: 0, x2: place(0), y2: 24 * rows.length + 4, stroke: "#6b7280", "stroke-dasharray": "3 3" }));
  rows.forEach((row, i) => {
    const y = 16 + 24 * i;
    const label = svg("text", { x: 4, y: y + 4, "font-size": 11 });
    label.textContent = `${row.criterion} (${row.measure})`;
    chart.append(label);
    if (row.low != null && row.high != null) {
      chart.append(svg("line", { x1: place(row.low), y1: y, x2: place(row.high), y2: y, stroke: "#111827", "stroke-width": 2 }));
    }
    chart.append(svg("circle", { cx: place(row.estimate), cy: y, r: 4, fill: row.significant ? "#b91c1c" : "#1d4ed8" }));
  });
  return element("figure", { class: "chart forest", "data-comparison": comparison.comparison, "data-variant": comparison.variant },
    element("figcaption", {}, `${comparison.comparison}: ${comparison.variant} against the baseline`), chart,
    element("ul", {}, ...comparison.rows.filter((row) => row.verdict).map((row) => element("li", { class: "verdict" }, row.verdict))));
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function drawHistogram(histogram) {
  const experiments = Object.keys(histogram.counts);
  const bins = histogram.edges.length - 1;
  const width = 40 + bins * (experiments.length * 8 + 6);
  const height = 140;
  const tallest = Math.max(1, ...experiments.flatMap((name) => histogram.counts[name]));
  const chart = svg("svg", { width, height: height + 30, role: "img", "aria-label": `${histogram.score} distribution` });
  experiments.forEach((name, e) => {
    histogram.counts[name].forEach((count, b) => {
      const barHeight = (count / tallest) * height;
      const bar = svg("rect", {
        class: "bar", x: 30 + b * (experiments.length * 8 + 6) + e * 8, y: height - barHeight, width: 7, height: Math.max(barHeight, 1),
        fill: COLOURS[e % COLOURS.length], "data-experiment": name, "data-bin": b,
      });
      const title = svg("title");
      title.textContent = `${name}: ${count} rows with ${histogram.score} from ${formatNumber(histogram.edges[b])} to ${formatNumber(histogram.edges[b + 1])}`;
      bar.append(title);
      bar.addEventListener("click", () => {
        $("score").value = histogram.score;
        $("experiment").value = name;
        $("low").value = String(histogram.edges[b]);
        $("high").value = String(histogram.edges[b + 1]);
        offset = 0;
        loadRows();
      });
      chart.append(bar);
    });
  });
  for (const [b, edge] of histogram.edges.entries()) {
    if (b === bins) break;
    const label = svg("text", { x: 30 + b * (experiments.length * 8 + 6), y: height + 14, "font-size": 10 });
    label.textContent = formatNumber((edge + histogram.edges[b + 1]) / 2);
    chart.append(label);
  }
  const legend = element("div", { class: "legend" }, ...experiments.map((name, e) => {
    const swatch = element("span", {}, `■ ${name}`);
    swatch.style.color = COLOURS[e % COLOURS.length];
    return swatch;
  }));
  return element("figure", { class: "chart", "data-score": histogram.score }, element("figcaption", {}, histogram.score), chart, legend);
}

function drawSummary() {
  // What a reviewer reads first: the runs' status, then the verdicts, then the numbers; the
  // clearance plans last.
  const section = $("summary");
  section.replaceChildren();
  for (const run of summary.runs) {
    section.append(element("h2", {}, `${run.suite} · run ${run.run_id}`),
      element("p", {}, "Status: ", element("strong", { class: "run-status" }, run.status), run.reason ? ` (${run.reason})` : ""),
      element("p", {}, `Classification ${run.level}; baseline ${run.baseline}; experiments ${run.experiments.join(", ")}`));
  }
  if (summary.comparisons.length) {
    section.append(element("h3", {}, "Comparisons with the baseline"),
      element("div", { id: "forest" }, ...summary.comparisons.map(drawForest)));
  }
  section.append(element("h3", {}, "Experiments"));
  const headers = ["experiment", "rows by outcome", ...summary.scores.map((s) => `${s} mean`), "cost", "mean latency (ms)"];
  section.append(element("table", { id: "statistics" },
    element("thead", {}, element("tr", {}, ...headers.map((h) => element("th", {}, h)))),
    element("tbody", {}, ...summary.experiments.map((name) => {
      const stats = summary.statistics[name];
      return element("tr", {}, element("td", {}, name === summary.baseline ? `${name} (baseline)` : name),
        element("td", {}, Object.entries(stats.statuses).map(([s, n]) => `${s} ${n}`).join(", ")),
        ...summary.scores.map((s) => element("td", {}, formatNumber(stats.scores[s]?.mean))),
        element("td", {}, stats.cost == null ? "" : stats.cost.toFixed(4)),
        element("td", {}, formatNumber(stats.mean_latency_ms)));
    }))));
  for (const run of summary.runs) {
    section.append(element("h3", {}, `Clearance plan of run ${run.run_id}`), element("table", { class: "plan" },
      element("thead", {}, element("tr", {}, ...["component", "kind", "clearance", "incoming", "outgoing", "allowed"].map((h) => element("th", {}, h)))),
      element("tbody", {}, ...run.plan.map((d) => element("tr", {}, ...[d.component, d.kind, d.clearance, d.incoming, d.outgoing, d.allowed ? "yes" : "NO"].map((v) => element("td", {}, v)))))));
  }
}

function showTab(name) {
  $("summary").hidden = name !== "summary";
  $("rows").hidden = name !== "rows";
  $("tab-summary").setAttribute("aria-pressed", String(name === "summary"));
  $("tab-rows").setAttribute("aria-pressed", String(name === "rows"));
  const hash = state();
  hash.set("tab", name);
  history.replaceState(null, "", `${location.pathname}${location.search}#${hash}`);
}

async function start() {
  try {
    summary = await api("/api/summary");
  } catch (error) {
    showError(error.message);
    return;
  }
  drawBanners();
  $("title").textContent = `${summary.runs.map((r) => r.suite).join(" vs ")} · ${summary.rows} rows`;
  fillSelect($("experiment"), summary.experiments);
  fillSelect($("score"), summary.scores);
  const saved = state();
  for (const name of FILTERS) {
    const field = $(name);
    if (!saved.has(name)) continue;
    if (field.type === "checkbox") field.checked = saved.get(name) === "1";
    else field.value = saved.get(name);
  }
  offset = Number(saved.get("offset") || 0);
  drawSummary();
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); offset = 0; loadRows(); });
  $("mode").addEventListener("change", () => { offset = 0; loadRows(); });
  $("clear").addEventListener("click", () => {
    $("filters").reset();
    for (const name of PAIR) $(name).value = "";
    offset = 0;
    loadRows();
  });
  $("previous").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadRows(); });
  $("next").addEventListener("click", () => { offset += PAGE; loadRows(); });
  $("tab-summary").addEventListener("click", () => showTab("summary"));
  $("tab-rows").addEventListener("click", () => showTab("rows"));
  $("close-detail").addEventListener("click", () => { $("detail").hidden = true; });
  await loadRows();
  showTab(saved.get("tab") === "summary" ? "summary" : "rows");
  await drawCharts();
  const row = saved.get("row");
  if (row) {
    const [number, repeat] = row.split(".");
    await openDetail(Number(number), Number(repeat || 0));
  }
  document.body.dataset.ready = "true";
}

start();
