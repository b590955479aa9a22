// Batch Image Processing: a status line and "Stop batch" / "Reset" buttons on every Batch Image
// Loader, fed by the pack's routes and events, plus a toast when a batch completes or fails. A
// loader inside a subgraph is known by its execution id ("4:1", see batch_graph.js) and the
// subgraph node around it shows a short progress line. Plain JS for ComfyUI's frontend extension
// API; it degrades to doing nothing when the routes are missing or no loader is in the graph.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { distinctNodes, executionId, followCanvas, isSubgraphNode, placements, showUnderNode } from "./batch_graph.js";
import { WORDS, statusLine, subgraphLine, word } from "./batch_words.js";
import { isThisWorkflow, turnOffInstantAutoQueue, workflowId, wrapQueuePrompt } from "./batch_workflow.js";

const NODE_CLASS = "BatchImageLoader";
const ROUTE = "/batch_image_processing";
const EVENT = "batch_image_processing.status";
const REFUSED_EVENT = "batch_image_processing.refused";

const batches = new Map(); // execution id -> its current batch's latest status (this workflow's)
const lastState = new Map(); // batch key -> last state seen, to toast on transitions only
let events = 0; // status events received so far
const eventAt = new Map(); // execution id -> the count when its last status event came

function isLoader(node) {
  return node.comfyClass === NODE_CLASS;
}

const REFUSAL_SHOWN_MS = 15000;

function setStatus(node, text, state) {
  // A refused Queue press stays on a second line for a while, under the running batch's status.
  const refusal = node.batchRefusal && Date.now() < node.batchRefusal.until ? node.batchRefusal.text : "";
  const shown = refusal && refusal !== text ? `${text}\n${refusal}` : text;
  const el = node.batchStatusElement;
  if (el) {
    el.textContent = shown;
    el.dataset.state = state ?? "idle";
  }
  node.batchStatusText = shown;
  node.setDirtyCanvas?.(true, true);
}

function toast(severity, summary, detail) {
  const toaster = app.extensionManager?.toast;
  if (toaster?.add) {
    toaster.add({ severity, summary, detail, life: severity === "error" ? 10000 : 5000 });
  }
}

// Each loader shows the batch of the execution id it stands for now (which copy of a subgraph the
// canvas is in); a line it was given by a button stays until that batch changes. Each subgraph
// node shows the batches of the loaders inside it, at any depth.
function render() {
  const loaderIds = placements().filter(({ node }) => isLoader(node)).map(({ id }) => id);
  for (const node of distinctNodes(isLoader)) {
    const id = executionId(node);
    const info = batches.get(id);
    if (id === node.batchShownId && (!info || info === node.batchShownInfo)) continue;
    node.batchShownId = id;
    node.batchShownInfo = info;
    setStatus(node, info ? statusLine(info) : word("idle"), info?.state ?? "idle");
  }
  for (const node of distinctNodes(isSubgraphNode)) {
    const inside = `${executionId(node)}:`;
    const infos = loaderIds.filter((id) => id.startsWith(inside)).map((id) => batches.get(id)).filter(Boolean);
    showUnderNode(node, subgraphLine(infos));
  }
}

function showBatch(info) {
  if (!isThisWorkflow(info)) return;
  events += 1;
  eventAt.set(String(info.node_id), events);
  batches.set(String(info.node_id), info);
  render();
  const before = lastState.get(info.key);
  lastState.set(info.key, info.state);
  if (info.state === "running" && turnOffInstantAutoQueue()) {
    toast("info", word("autoQueueOffTitle"), word("autoQueueOffDetail"));
  }
  if (before === undefined || before === info.state) return;
  if (info.state === "complete") {
    toast("success", word("batchCompleteTitle"),
      word("batchCompleteDetail", { directory: info.directory, status: statusLine(info) }));
  } else if (info.state === "stopped" && info.last_error) {
    toast("error", word("batchErrorTitle"), info.last_error);
  }
}

async function refresh() {
  const asked = events;
  try {
    const response = await api.fetchApi(`${ROUTE}/status`);
    if (!response.ok) return;
    const { batches: known } = await response.json();
    // An event that came while this answer was on its way is newer than the answer: it stays.
    const newer = new Map([...batches].filter(([id]) => (eventAt.get(id) ?? 0) > asked));
    batches.clear();
    for (const [id, info] of newer) batches.set(id, info);
    for (const info of (known ?? []).filter(isThisWorkflow)) {  // newest first: a node's first is its current one
      const id = String(info.node_id);
      if (batches.has(id)) continue;
      batches.set(id, info);
      lastState.set(info.key, info.state);
    }
    render();
  } catch (error) {
    console.debug("[BatchImageProcessing] status unavailable", error);
  }
}

async function post(action, node, extra = {}) {
  const failed = word(action === "reset" ? "resetFailed" : "stopFailed");
  const nodeId = executionId(node); // "4:1" inside a subgraph: the id the server knows
  try {
    const response = await api.fetchApi(`${ROUTE}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ node_id: nodeId, workflow_id: workflowId() ?? undefined, ...extra }),
    });
    if (response.status === 404) {  // the server knows no batch of this id: say so on the node
      setStatus(node, word("noBatchForNode", { node: nodeId }), "idle");
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      toast("error", failed, body.error ?? `HTTP ${response.status}`);
      return;
    }
    if (action === "reset") setStatus(node, word("positionForgotten"), "idle");
    else setStatus(node, word("stopping"), "stopping");
    await refresh();
  } catch (error) {
    toast("error", failed, String(error));
  }
}

function translatedLabel(widget, key) {
  let renamed; // a label someone sets (e.g. the frontend) wins over ours
  Object.defineProperty(widget, "label", {
    configurable: true,
    enumerable: true,
    get: () => renamed ?? word(key),
    set: (value) => { renamed = value || undefined; },
  });
}

function addControls(node) {
  const element = document.createElement("div");
  element.className = "batch-image-processing-status";
  element.style.cssText = "font: 12px sans-serif; opacity: 0.85; padding: 2px 6px; white-space: pre-line;";
  node.batchStatusElement = element;
  if (typeof node.addDOMWidget === "function") {
    const widget = node.addDOMWidget("batch_status", "batch_status", element, { serialize: false, hideOnZoom: false });
    widget.serialize = false;
    widget.computeSize = () => [node.size?.[0] ?? 300, 36];
  }
  // A button's name stays English (scripts and tests find it by name); its label is the word in
  // the page's language, looked up when drawn, so it follows a language loaded or changed later.
  // Stop batch: this server's chain. Stop on all servers: a shared job (shared_job) stops on every
  // server taking part, each after its current image (without shared_job it is the same as Stop).
  const stop = node.addWidget("button", WORDS.stopButton, null, () => post("stop", node));
  const stopAll = node.addWidget("button", WORDS.stopAllButton, null,
    () => post("stop", node, { all_servers: true }));
  const reset = node.addWidget("button", WORDS.resetButton, null, () => post("reset", node));
  for (const [button, key] of [[stop, "stopButton"], [stopAll, "stopAllButton"], [reset, "resetButton"]]) {
    button.serialize = false;
    if (button.options) button.options.serialize = false;
    translatedLabel(button, key);
  }
  setStatus(node, word("idle"), "idle");
}

function refusalText(detail) {
  const batch = detail.batch ?? {};
  const params = { directory: detail.directory, image: Math.min(batch.position + 1, batch.total), total: batch.total };
  if (typeof batch.total !== "number" || typeof batch.position !== "number") return detail.text;
  return word(detail.reason === "queued_while_running" ? "refusedQueuedWhileRunning" : "refusedRunning", params);
}

function showRefusal(detail) {
  // A Queue press that did nothing: say so where the person who pressed looks.
  const text = refusalText(detail);
  toast("warn", word("refusedTitle"), text);
  const id = String(detail.node_id);
  const node = isThisWorkflow(detail) ? placements().find((placed) => placed.id === id)?.node : null;
  if (node && executionId(node) === id) {  // not a copy of its subgraph that the canvas is not in
    node.batchRefusal = { text, until: Date.now() + REFUSAL_SHOWN_MS };
    setStatus(node, detail.batch ? statusLine(detail.batch) : "", detail.batch?.state ?? "running");
  }
}

app.registerExtension({
  name: "BatchImageProcessing.Status",
  async setup() {
    api.addEventListener(EVENT, ({ detail }) => {
      if (detail && detail.node_id !== undefined) showBatch(detail);
    });
    api.addEventListener(REFUSED_EVENT, ({ detail }) => {
      if (detail?.text) showRefusal(detail);
    });
    wrapQueuePrompt();
    followCanvas(render);
    api.addEventListener("reconnected", refresh);
    await refresh();
  },
  async nodeCreated(node) {
    if (!isLoader(node)) return;
    addControls(node);
    setTimeout(refresh, 0); // a loaded workflow, or a loader moved into a subgraph: show its batch
  },
});
