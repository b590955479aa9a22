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

// Every word the extension shows, in English, by message id. The translations are under
// "batchImageProcessing" in locales/<lang>/main.json (ComfyUI serves them through /i18n);
// locales/en/main.json is generated from this table by scripts/i18n_docs.py. A new word: one line
// here, one in locales/zh and locales/ja (tests/unit/test_i18n.py says what is missing).
// {name} marks a value filled in by the code. One entry per line: `key: "English",`.
const WORDS = {
  stopButton: "Stop batch",
  stopAllButton: "Stop on all servers",
  resetButton: "Reset",
  idle: "No batch yet: press Queue once to process the folder.",
  noBatchForNode: "No batch known for this node yet.",
  positionForgotten: "Position forgotten: the next Queue starts at start_index.",
  stopping: "Stopping after the current image...",
  stopFailed: "Batch stop failed",
  resetFailed: "Batch reset failed",
  autoQueueOffTitle: "Auto-queue turned off",
  autoQueueOffDetail: "Batch Image Loader queues every image of the folder itself, then stops.",
  batchCompleteTitle: "Batch complete",
  batchCompleteDetail: "{directory}: {status}",
  batchErrorTitle: "Batch stopped on an error",
  statusCount: "{position} / {total}",
  statusShared: "shared ({claimed} in progress, {servers} servers; {here} here)",
  statusRatePerSecond: "{rate} img/s",
  statusRatePerMinute: "{rate} img/min",
  statusTimeLeft: "about {duration} left",
  statusDone: "done",
  statusDoneSkipped: "done, {skipped} skipped",
  statusStopped: "stopped",
  statusStoppedReason: "stopped ({reason})",
  statusStoppedError: "stopped: {error}",
  statusStopping: "stopping after this image",
  refusedTitle: "Batch already running",
  refusedRunning: "Not started: the batch on '{directory}' is running (at image {image}/{total}). Each image is processed once: wait for it, or press Stop batch first.",
  refusedQueuedWhileRunning: "Not started: this run was queued while the batch on '{directory}' was running (now at image {image}/{total}). Each image is processed once: press Queue again to resume.",
  durationHours: "{hours} h {minutes} min",
  durationMinutes: "{minutes} min {seconds} s",
  durationSeconds: "{seconds} s",
};

const I18N_NAMESPACE = "batchImageProcessing";

function frontendI18n() {
  // ComfyUI's frontend has no i18n call in its extension API, but its vue-i18n instance (which
  // holds the words of every pack from /i18n, ours included, for the language the user picked)
  // is installed on the Vue app as $t/$te: 1.32.9 (vue-i18n 9) up to 1.58.1 (vue-i18n 11).
  const globals = document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties;
  return typeof globals?.$t === "function" && typeof globals?.$te === "function" ? globals : null;
}

// The word `key` in the page's language; `fallbackEnglish` where the frontend offers no i18n
// or has no translation. {name} placeholders are filled from `params` here (not by vue-i18n,
// which would HTML-escape file names).
function t(key, fallbackEnglish, params = {}) {
  let text = fallbackEnglish;
  const i18n = frontendI18n();
  const id = `${I18N_NAMESPACE}.${key}`;
  try {
    if (i18n?.$te(id)) {
      const kept = Object.fromEntries(Object.keys(params).map((name) => [name, `{${name}}`]));
      const translated = i18n.$t(id, kept);
      if (typeof translated === "string" && translated !== id) text = translated;
    }
  } catch {
    // a translation vue-i18n cannot parse: keep the English
  }
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

function word(key, params) {
  return t(key, WORDS[key] ?? key, params);
}

function duration(totalSeconds) {
  const seconds = Math.round(totalSeconds);
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (hours) return word("durationHours", { hours, minutes });
  if (minutes) return word("durationMinutes", { minutes, seconds: seconds % 60 });
  return word("durationSeconds", { seconds });
}

// The status line, from the batch's numbers (utils/batch/status.py writes the same line in
// English as `text`, used here for any state this code does not know).
function statusLine(info) {
  const known = ["running", "complete", "stopped"].includes(info.state);
  if (!known || typeof info.position !== "number" || typeof info.total !== "number") return info.text ?? "";
  const count = (n) => n.toLocaleString("en-US");
  let head = word("statusCount", { position: count(info.position), total: count(info.total) });
  if (info.shared) {  // several servers share the batch: the shared count, then this server's part
    head += " " + word("statusShared", { claimed: info.shared.claimed, servers: info.shared.servers,
      here: count(info.done) });
  }
  const parts = [head];
  if (info.state === "running" && info.current_file) parts.push(info.current_file);
  const rate = info.rate_per_s;
  if (rate) {
    parts.push(rate >= 0.1 ? word("statusRatePerSecond", { rate: rate.toFixed(1) })
      : word("statusRatePerMinute", { rate: (60 * rate).toFixed(1) }));
  }
  if (typeof info.eta_s === "number") parts.push(word("statusTimeLeft", { duration: duration(info.eta_s) }));
  if (info.state === "complete") {
    parts.push(info.skipped ? word("statusDoneSkipped", { skipped: info.skipped }) : word("statusDone"));
  } else if (info.state === "stopped") {
    if (info.last_error) parts.push(word("statusStoppedError", { error: info.last_error }));
    else if (info.stop_reason) parts.push(word("statusStoppedReason", { reason: info.stop_reason }));
    else parts.push(word("statusStopped"));
  } else if (info.stopping) {
    parts.push(word("statusStopping"));
  }
  return parts.join(" - ");
}

const lastState = new Map(); // batch key -> last state seen, to toast on transitions only

function loaders() {
  return (app.graph?._nodes ?? []).filter((node) => node.comfyClass === NODE_CLASS);
}

function findLoader(nodeId) {
  return loaders().find((node) => String(node.id) === String(nodeId));
}

// Which workflow this tab is, as the server tells batches apart: the id the pack gave the tab
// (kept in the workflow's "extra", so it is saved with it) or else the frontend's own graph id.
const WORKFLOW_ID_KEY = "batch_image_processing_id";

function workflowIdOf(state) {
  return state?.extra?.[WORKFLOW_ID_KEY] ?? state?.id ?? null;
}

function workflowId() {
  return workflowIdOf(app.rootGraph ?? app.graph);
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
    .map((wf) => workflowIdOf(wf.activeState ?? wf.changeTracker?.activeState))
    .filter(Boolean);
}

function giveThisTabItsOwnWorkflowId() {
  // Two tabs opened from one template (or a workflow and its Save As copy, both open) carry the
  // same graph id, which newer frontends do not let anyone change: the tab being queued gets an
  // id of its own in the workflow's extra data, saved with it, so each tab is a batch of its own.
  const graph = app.rootGraph ?? app.graph;
  const id = workflowId();
  if (graph && id && openWorkflowIds().includes(id) && globalThis.crypto?.randomUUID) {
    graph.extra = graph.extra ?? {};
    graph.extra[WORKFLOW_ID_KEY] = crypto.randomUUID();
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
    toast("info", word("autoQueueOffTitle"), word("autoQueueOffDetail"));
  }
}

function showBatch(info) {
  if (!isThisWorkflow(info)) return;
  const node = findLoader(info.node_id);
  if (node) setStatus(node, statusLine(info), info.state);
  const before = lastState.get(info.key);
  lastState.set(info.key, info.state);
  if (info.state === "running") turnOffInstantAutoQueue();
  if (before === undefined || before === info.state) return;
  if (info.state === "complete") {
    toast("success", word("batchCompleteTitle"),
      word("batchCompleteDetail", { directory: info.directory, status: statusLine(info) }));
  } else if (info.state === "stopped" && info.last_error) {
    toast("error", word("batchErrorTitle"), info.last_error);
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
      if (node) setStatus(node, statusLine(info), info.state);
    }
  } catch (error) {
    console.debug("[BatchImageProcessing] status unavailable", error);
  }
}

async function post(action, node, extra = {}) {
  const failed = word(action === "reset" ? "resetFailed" : "stopFailed");
  try {
    const response = await api.fetchApi(`${ROUTE}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ node_id: String(node.id), workflow_id: workflowId() ?? undefined, ...extra }),
    });
    if (response.status === 404) {
      setStatus(node, word("noBatchForNode"), "idle");
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
  const node = isThisWorkflow(detail) ? findLoader(detail.node_id) : null;
  if (node) {
    node.batchRefusal = { text, until: Date.now() + REFUSAL_SHOWN_MS };
    setStatus(node, detail.batch ? statusLine(detail.batch) : "", detail.batch?.state ?? "running");
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
