// The words of the Batch Image Processing extension and the lines it writes from a batch's numbers,
// in the page's language (the frontend's vue-i18n), English where it has no translation.

// Every word the extension shows, in English, by message id. The translations are under
// "batchImageProcessing" in locales/<lang>/main.json (ComfyUI serves them through /i18n);
// locales/en/main.json is generated from this table by scripts/i18n_docs.py. A new word: one line
// here, one in locales/zh and locales/ja (tests/unit/test_i18n.py says what is missing).
// {name} marks a value filled in by the code. One entry per line: `key: "English",`.
export const WORDS = {
  stopButton: "Stop batch",
  stopAllButton: "Stop on all servers",
  resetButton: "Reset",
  idle: "No batch yet: press Queue once to process the folder.",
  noBatchForNode: "No batch known for node {node} on this server.",
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
  statusStoppingRun: "stopping after this run",
  statusRunFiles: "{file} and {more} more",
  refusedTitle: "Batch already running",
  refusedRunning: "Not started: the batch on '{directory}' is running (at image {image}/{total}). Each image is processed once: wait for it, or press Stop batch first.",
  refusedQueuedWhileRunning: "Not started: this run was queued while the batch on '{directory}' was running (now at image {image}/{total}). Each image is processed once: press Queue again to resume.",
  subgraphBatch: "Batch: {count}",
  subgraphBatches: "{batches} batches: {count}",
  subgraphDoneIn: "done in about {duration}",
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

export function word(key, params) {
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
export function statusLine(info) {
  const known = ["running", "complete", "stopped"].includes(info.state);
  if (!known || typeof info.position !== "number" || typeof info.total !== "number") return info.text ?? "";
  const count = (n) => n.toLocaleString("en-US");
  let head = word("statusCount", { position: count(info.position), total: count(info.total) });
  if (info.shared) {  // several servers share the batch: the shared count, then this server's part
    head += " " + word("statusShared", { claimed: info.shared.claimed, servers: info.shared.servers,
      here: count(info.done) });
  }
  const parts = [head];
  const inRun = info.run_images > 1;  // images_per_run: the run's first file stands for the run
  if (info.state === "running" && info.current_file) {
    parts.push(inRun ? word("statusRunFiles", { file: info.current_file, more: info.run_images - 1 }) : info.current_file);
  }
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
    parts.push(word(inRun ? "statusStoppingRun" : "statusStopping"));
  }
  return parts.join(" - ");
}

// The line under a subgraph node for the batches inside it (the current batch of each loader).
export function subgraphLine(batches) {
  const known = batches.filter((info) => typeof info.position === "number" && typeof info.total === "number");
  if (!known.length) return "";
  const sum = (key) => known.reduce((total, info) => total + info[key], 0).toLocaleString("en-US");
  const count = word("statusCount", { position: sum("position"), total: sum("total") });
  const parts = [known.length === 1 ? word("subgraphBatch", { count })
    : word("subgraphBatches", { batches: known.length, count })];
  const running = known.filter((info) => info.state === "running");
  const left = running.map((info) => info.eta_s).filter((eta) => typeof eta === "number");
  if (left.length) parts.push(word("subgraphDoneIn", { duration: duration(Math.max(...left)) }));
  if (running.some((info) => info.stopping)) {
    parts.push(word(running.some((info) => info.stopping && info.run_images > 1) ? "statusStoppingRun" : "statusStopping"));
  }
  else if (!running.length && known.some((info) => info.state === "stopped")) parts.push(word("statusStopped"));
  else if (known.every((info) => info.state === "complete")) parts.push(word("statusDone"));
  return parts.join(" - ");
}
