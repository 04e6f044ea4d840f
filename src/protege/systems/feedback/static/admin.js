// Admin page: progress per annotator and agreement between annotators, from /api/admin/progress.
// The answer is drawn generically (lists of rows become tables, objects become definition lists), so
// a new statistic on the server shows up without a change here.
import { api, el, setupHeader, whoAmI } from "/static/api.js";

const $ = (id) => document.getElementById(id);

function format(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(3);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function table(rows) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map((c) => el("td", {}, format(row[c])))))),
  );
}

function draw(value) {
  if (Array.isArray(value) && value.every((v) => v && typeof v === "object" && !Array.isArray(v))) return table(value);
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const list = el("dl");
    for (const [key, inner] of Object.entries(value)) list.append(el("dt", {}, key), el("dd", {}, draw(inner)));
    return list;
  }
  return document.createTextNode(format(value));
}

async function refresh() {
  try {
    $("progress").replaceChildren(draw(await api("/api/admin/progress")));
    $("status").textContent = "";
  } catch (error) {
    $("status").textContent = `Could not load the progress (${error.message}).`;
  }
}

async function main() {
  try {
    setupHeader(await whoAmI());
  } catch (error) {
    $("status").textContent = `The server cannot be reached (${error.message}).`;
    return;
  }
  $("refresh").addEventListener("click", refresh);
  refresh();
}

main();
