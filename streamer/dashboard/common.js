// The page keeps the last figures it got. When a refresh fails it says so, and since when, so
// that nobody reads a stopped worker's counts as current.
let failingSince = null;
async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}
function answered() {
  failingSince = null;
  document.getElementById("stale").hidden = true;
}
function notAnswering(what, error) {
  failingSince = failingSince || new Date();
  const banner = document.getElementById("stale");
  banner.textContent = `${what} not answering since ${failingSince.toLocaleTimeString()} ` +
    `(${error.message || error}): the figures below are from before then.`;
  banner.hidden = false;
  console.warn(error);
}
function cell(row, text, cls) {
  const td = row.insertCell();  // textContent: alert fields come from producers
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
function renderRows(table, items, empty, toCells) {
  // one row per item from toCells(item): [text, class] pairs; `empty` when there are none
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren();
  if (!items.length) {
    cell(body.insertRow(), empty, "empty").colSpan = body.parentElement.tHead.rows[0].cells.length;
    return;
  }
  for (const item of items) {
    const row = body.insertRow();
    for (const [text, cls] of toCells(item)) cell(row, text, cls);
  }
}
function renderAlerts(alerts) {
  renderRows("alerts", alerts, "none yet", (a) => [
    [new Date(a.timestamp).toLocaleString()],
    [a.decision, a.decision],
    [a.score.toFixed(3), "num"],
    [`${a.amount.toLocaleString(undefined, {minimumFractionDigits: 2})} ${a.currency}`, "num"],
    [a.customer_id],
    [a.terminal_id],
    [a.reasons.map((r) => r.description).join("; ")],
  ]);
}
function renderCards(items) {
  // items: [value, label, class]; built as text, never as HTML
  const cards = document.getElementById("cards");
  cards.replaceChildren();
  for (const [value, label, cls] of items) {
    const div = document.createElement("div");
    div.className = "card " + (cls || "");
    const n = document.createElement("div");
    n.className = "n";
    n.textContent = typeof value === "number" ? value.toLocaleString() : value;
    const l = document.createElement("div");
    l.className = "l";
    l.textContent = label;
    div.append(n, l);
    cards.appendChild(div);
  }
}
