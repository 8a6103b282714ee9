"""The gateway's live dashboard (`GET /dashboard`): one self-contained page (no outside request:
it works on an isolated network) that reads `GET /v1/ops/status` every two seconds and shows
the streams with their throughput and lag, the national databases with latency, error rate and
breaker, the dead letters, the service quality per agency and source (requests, the share
answered within the deadline, the slowest sources), and the processes with what is unhealthy.
"""

from __future__ import annotations

DASHBOARD_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tthc-bus</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #1d2733; background: #f7f8fa; }
 h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
 table { border-collapse: collapse; background: #fff; min-width: 40em; }
 th, td { border: 1px solid #d5dae1; padding: .3em .6em; text-align: left; }
 th { background: #eef1f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
 .ok { color: #17803d; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
 #state { margin: .3em 0 1em; } #problems li { color: #b42318; }
 .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(36em, 1fr)); gap: 0 2em; }
</style>
</head>
<body>
<h1>tthc-bus</h1>
<div id="state">loading ...</div>
<ul id="problems"></ul>
<div class="grid">
<section><h2>Change streams</h2><table id="streams"><thead><tr>
 <th>stream</th><th>feed</th><th>events/s</th><th>lag</th><th>last event</th></tr></thead>
 <tbody></tbody></table></section>
<section><h2>National databases</h2><table id="sources"><thead><tr>
 <th>source</th><th>health</th><th>breaker</th><th>p50 ms</th><th>p99 ms</th>
 <th>error rate</th></tr></thead><tbody></tbody></table></section>
<section><h2>Dead letters</h2><table id="dlq"><thead><tr>
 <th>subscription</th><th>state</th><th>dead-lettered</th><th>delivered</th><th>last error</th>
 </tr></thead><tbody></tbody></table></section>
<section><h2>Service quality (last hour)</h2><table id="quality"><thead><tr>
 <th>agency</th><th>source</th><th>requests</th><th>within deadline</th><th>p95 ms</th>
 <th>errors</th></tr></thead><tbody></tbody></table>
 <p>Slowest sources: <span id="slowest">-</span></p></section>
<section><h2>Processes</h2><table id="processes"><thead><tr>
 <th>member</th><th>kind</th><th>health</th><th>seen</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Consumer groups</h2><table id="groups"><thead><tr>
 <th>group</th><th>lag</th></tr></thead><tbody></tbody></table></section>
</div>
<script>
"use strict";
const previous = {};
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  return td;
}
function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(cells => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}
function health(ok) { return cell(ok ? "ok" : "UNHEALTHY", ok ? "ok" : "bad"); }
function pct(x) { return x === null || x === undefined ? "-" : (100 * x).toFixed(1) + " %"; }
function render(report) {
  const now = Date.now() / 1000;
  document.getElementById("state").innerHTML = "";
  const state = document.createElement("span");
  state.className = report.healthy ? "ok" : "bad";
  state.textContent = (report.healthy ? "all healthy" : "unhealthy") + " - " + report.time;
  document.getElementById("state").append(state);
  document.getElementById("problems").replaceChildren(...report.problems.map(p => {
    const li = document.createElement("li"); li.textContent = p; return li;
  }));
  const lagOf = {};
  for (const [group, entry] of Object.entries(report.groups)) {
    for (const topic of entry.topics) lagOf[topic] = (lagOf[topic] || 0) + entry.lag;
  }
  fill("streams", Object.entries(report.feeds).map(([source, feed]) => {
    const topic = "tthc.sync." + source + ".change";
    const before = previous[topic];
    const rate = before && now > before.at
      ? (feed.events - before.events) / (now - before.at) : null;
    previous[topic] = { events: feed.events, at: now };
    return [cell(topic), cell(feed.state, feed.state === "backing_off" ? "bad" : ""),
            cell(rate === null ? "-" : Math.max(rate, 0).toFixed(1), "num"),
            cell(lagOf[topic] ?? 0, "num"), cell(feed.last_event_time)];
  }));
  fill("sources", Object.entries(report.sources).map(([source, s]) => [
    cell(source), health(s.healthy), cell(s.breaker, s.breaker === "open" ? "bad" : ""),
    cell(s.p50_ms, "num"), cell(s.p99_ms, "num"),
    cell(s.calls ? pct(s.errors / s.calls) : "-", "num")]));
  fill("dlq", Object.entries(report.subscriptions).map(([name, sub]) => [
    cell(name), cell(sub.state), cell(sub.dead_lettered, sub.dead_lettered ? "num bad" : "num"),
    cell(sub.delivered, "num"), cell(sub.last_error)]));
  fill("quality", report.quality.map(q => [
    cell(q.agency), cell(q.source), cell(q.requests, "num"),
    cell(pct(q.requests ? 1 - q.deadline_misses / q.requests : null), "num"),
    cell(q.p95_ms, "num"), cell(q.errors, "num")]));
  const slowest = [...report.quality].filter(q => q.p95_ms !== null)
    .sort((a, b) => b.p95_ms - a.p95_ms).slice(0, 3)
    .map(q => q.source + " (" + q.p95_ms + " ms p95, " + q.agency + ")");
  document.getElementById("slowest").textContent = slowest.length ? slowest.join(", ") : "-";
  fill("processes", report.processes.map(p => [
    cell(p.member), cell(p.kind), health(p.healthy), cell(p.age_s + " s ago")]));
  fill("groups", Object.entries(report.groups).map(([g, e]) => [cell(g), cell(e.lag, "num")]));
}
async function refresh() {
  try {
    const answer = await fetch("/v1/ops/status", { cache: "no-store" });
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    render(await answer.json());
  } catch (error) {
    document.getElementById("state").textContent = "status not available: " + error.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
