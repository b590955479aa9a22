// Which workflow (tab) a batch belongs to, and the Run button's auto-queue, for the Batch Image
// Processing extension.
import { app } from "../../scripts/app.js";

// Which workflow this tab is, as the server tells batches apart: the id the pack gave the tab
// (kept in the workflow's "extra", so it is saved with it) or else the frontend's own graph id.
const WORKFLOW_ID_KEY = "batch_image_processing_id";

function workflowIdOf(state) {
  return state?.extra?.[WORKFLOW_ID_KEY] ?? state?.id ?? null;
}

export function workflowId() {
  return workflowIdOf(app.rootGraph ?? app.graph);
}

export function isThisWorkflow(info) {
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

export function wrapQueuePrompt() {
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

function queueSettingsStore() {
  // The frontend keeps its Run-button mode in a Pinia store; reach it through the mounted Vue app.
  const pinia = document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
  return pinia?._s?.get?.("queueSettingsStore") ?? null;
}

export function turnOffInstantAutoQueue() {
  // "Run (Instant)" queues the workflow again whenever the queue empties; with a batch that
  // queues itself, that would start pass after pass. The server refuses such runs too.
  // Returns true when it was on (and is off now).
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
  return turnedOff;
}
