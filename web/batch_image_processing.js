// Batch Image Processing: a status line and "Stop batch" / "Reset" buttons on every Batch Image
// Loader, fed by the pack's routes and events, plus a toast when a batch completes or fails.
// Plain JS for ComfyUI's frontend extension API; it degrades to doing nothing when the routes
// are missing or no loader is in the graph.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_CLASS = "BatchImageLoader";
const ROUTE = "/batch_image_processing";
const EVENT = "batch_image_processing.status";
const REFUSED_EVENT = "batch_image_processing.refused";
const IDLE_TEXT = "No batch yet: press Queue once to process the folder.";

const lastState = new Map(); // batch key -> last state seen, to toast on transitions only

function loaders() {
  return (app.graph?._nodes ?? []).filter((node) => node.comfyClass === NODE_CLASS);
}

function findLoader(nodeId) {
  return loaders().find((node) => String(node.id) === String(nodeId));
}

function workflowId() {
  // The id the frontend keeps with the open workflow; the server tells batches apart by it.
  return (app.rootGraph ?? app.graph)?.id ?? null;
}

function isThisWorkflow(info) {
  const id = workflowId();
  return !id || !info.workflow_id || info.workflow_id === id;
}

function openWorkflowIds() {
  const store = app.extensionManager?.workflow;
  const active = store?.activeWorkflow;
  return (store?.openWorkflows ?? [])
    .filter((wf) => wf !== active)
    .map((wf) => wf.activeState?.id ?? wf.changeTracker?.activeState?.id)
    .filter(Boolean);
}

function giveThisTabItsOwnWorkflowId() {
  // Two tabs opened from one template (or a workflow and its Save As copy, both open) carry the
  // same id; each is a batch of its own, so the tab being queued gets a fresh id.
  const graph = app.rootGraph ?? app.graph;
  if (graph?.id && openWorkflowIds().includes(graph.id) && globalThis.crypto?.randomUUID) {
    graph.id = crypto.randomUUID();
  }
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

function queueSettingsStore() {
  // The frontend keeps its Run-button mode in a Pinia store; reach it through the mounted Vue app.
  const pinia = document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
  return pinia?._s?.get?.("queueSettingsStore") ?? null;
}

function turnOffInstantAutoQueue() {
  // "Run (Instant)" queues the workflow again whenever the queue empties; with a batch that
  // queues itself, that would start pass after pass. The server refuses such runs too.
  let turnedOff = false;
  const store = queueSettingsStore();
  if (store?.mode === "instant") {
    store.mode = "disabled";
    turnedOff = true;
  }
  if (app.ui?.autoQueueEnabled && app.ui.autoQueueMode === "instant") {  // the legacy menu
    app.ui.autoQueueEnabled = false;
    turnedOff = true;
  }
  if (turnedOff) {
    toast("info", "Auto-queue turned off",
      "Batch Image Loader queues every image of the folder itself, then stops.");
  }
}

function showBatch(info) {
  if (!isThisWorkflow(info)) return;
  const node = findLoader(info.node_id);
  if (node) setStatus(node, info.text, info.state);
  const before = lastState.get(info.key);
  lastState.set(info.key, info.state);
  if (info.state === "running") turnOffInstantAutoQueue();
  if (before === undefined || before === info.state) return;
  if (info.state === "complete") {
    toast("success", "Batch complete", `${info.directory}: ${info.text}`);
  } else if (info.state === "stopped" && info.last_error) {
    toast("error", "Batch stopped on an error", info.last_error);
  }
}

async function refresh() {
  try {
    const response = await api.fetchApi(`${ROUTE}/status`);
    if (!response.ok) return;
    const { batches } = await response.json();
    const shown = new Set();
    const mine = (batches ?? []).filter(isThisWorkflow);
    for (const info of mine) {  // newest first: the first batch of a node is its current one
      if (shown.has(String(info.node_id))) continue;
      shown.add(String(info.node_id));
      lastState.set(info.key, info.state);
      const node = findLoader(info.node_id);
      if (node) setStatus(node, info.text, info.state);
    }
  } catch (error) {
    console.debug("[BatchImageProcessing] status unavailable", error);
  }
}

async function post(action, node) {
  try {
    const response = await api.fetchApi(`${ROUTE}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ node_id: String(node.id), workflow_id: workflowId() ?? undefined }),
    });
    if (response.status === 404) {
      setStatus(node, "No batch known for this node yet.", "idle");
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      toast("error", `Batch ${action} failed`, body.error ?? `HTTP ${response.status}`);
      return;
    }
    if (action === "reset") setStatus(node, "Position forgotten: the next Queue starts at start_index.", "idle");
    else setStatus(node, "Stopping after the current image...", "stopping");
    await refresh();
  } catch (error) {
    toast("error", `Batch ${action} failed`, String(error));
  }
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
  const stop = node.addWidget("button", "Stop batch", null, () => post("stop", node));
  const reset = node.addWidget("button", "Reset", null, () => post("reset", node));
  for (const button of [stop, reset]) {
    button.serialize = false;
    if (button.options) button.options.serialize = false;
  }
  setStatus(node, IDLE_TEXT, "idle");
}

function showRefusal(detail) {
  // A Queue press that did nothing: say so where the person who pressed looks.
  toast("warn", "Batch already running", detail.text);
  const node = isThisWorkflow(detail) ? findLoader(detail.node_id) : null;
  if (node) {
    node.batchRefusal = { text: detail.text, until: Date.now() + REFUSAL_SHOWN_MS };
    setStatus(node, detail.batch?.text ?? "", detail.batch?.state ?? "running");
  }
}

function wrapQueuePrompt() {
  const original = app.queuePrompt;
  if (typeof original !== "function" || original.batchImageProcessing) return;
  const wrapped = async function (...args) {
    try {
      giveThisTabItsOwnWorkflowId();
    } catch (error) {
      console.debug("[BatchImageProcessing] could not check the workflow id", error);
    }
    return original.apply(this, args);
  };
  wrapped.batchImageProcessing = true;
  app.queuePrompt = wrapped;
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
    api.addEventListener("reconnected", refresh);
    await refresh();
  },
  async nodeCreated(node) {
    if (node.comfyClass !== NODE_CLASS) return;
    addControls(node);
    setTimeout(refresh, 0); // a loaded workflow: show where its batch stands
  },
});
