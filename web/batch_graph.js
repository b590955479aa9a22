// Where a Batch Image Loader sits in the graph, as the server knows it: its execution id. A node on
// the root graph is "5"; inside a subgraph the id is the path of subgraph nodes from the root down
// to it: "4:1" is node 1 of the subgraph that root node 4 holds, "7:4:1" one level deeper (the
// frontend reads ids so in getNodeByExecutionId, 1.2x to 1.58). The nodes of a subgraph definition
// are shared by every copy of it: with nodes 4 and 8 two copies of one subgraph, the same loader
// object is "4:1" and "8:1". Which copy a node inside stands for follows how the canvas was opened
// (the fromNode of "subgraph-opened"). Frontends without subgraphs: every id is a root node's id.
import { app } from "../../scripts/app.js";

const MAX_DEPTH = 32; // subgraphs cannot hold themselves; a bound all the same

export function rootGraph() {
  return app.rootGraph ?? app.graph ?? null;
}

function nodesOf(graph) {
  return graph?._nodes ?? graph?.nodes ?? [];
}

export function isSubgraphNode(node) {
  return Boolean(node?.isSubgraphNode?.() && node.subgraph);
}

// Every node of the graph and of its subgraphs, each as often as it is placed: [{node, id}].
export function placements(graph = rootGraph(), prefix = "", depth = 0) {
  const found = [];
  if (!graph || depth > MAX_DEPTH) return found;
  for (const node of nodesOf(graph)) {
    const id = `${prefix}${node.id}`;
    found.push({ node, id });
    if (isSubgraphNode(node)) found.push(...placements(node.subgraph, `${id}:`, depth + 1));
  }
  return found;
}

// The subgraphs the canvas went into, outermost first: {graph, from} with `from` the execution id
// of the subgraph node it was opened from.
let opened = [];

function graphShown(graph) {
  if (!graph || graph === rootGraph()) {
    opened = [];
    return;
  }
  const at = opened.findIndex((entry) => entry.graph === graph);
  if (at >= 0) opened = opened.slice(0, at + 1); // back up the breadcrumb
}

function subgraphOpened({ subgraph, fromNode }) {
  if (!subgraph || !fromNode) return;
  const parent = opened.findIndex((entry) => entry.graph === fromNode.graph);
  const base = parent >= 0 ? opened.slice(0, parent + 1) : [];
  const prefix = base.at(-1)?.from;
  const from = prefix ? `${prefix}:${fromNode.id}` : (idsOf(fromNode)[0] ?? String(fromNode.id));
  opened = [...base, { graph: subgraph, from }];
}

// Calls onChange whenever the canvas shows another graph (a subgraph opened, or left).
export function followCanvas(onChange) {
  const element = app.canvas?.canvas;
  if (!element?.addEventListener) return;
  element.addEventListener("litegraph:set-graph", (event) => {
    graphShown(event.detail?.newGraph);
    onChange();
  });
  element.addEventListener("subgraph-opened", (event) => {
    subgraphOpened(event.detail ?? {});
    onChange();
  });
}

function idsOf(node) {
  return placements().filter((placed) => placed.node === node).map((placed) => placed.id);
}

// The execution id `node` stands for now: its only one, or the one of the copy the canvas is in.
export function executionId(node) {
  const ids = idsOf(node);
  if (ids.length <= 1) return ids[0] ?? String(node.id);
  const inside = opened.find((entry) => entry.graph === node.graph);
  const id = inside && `${inside.from}:${node.id}`;
  return ids.includes(id) ? id : ids[0];
}

// The nodes of the whole graph that `test` accepts, each once (a shared node is listed once).
export function distinctNodes(test) {
  return [...new Set(placements().map((placed) => placed.node).filter(test))];
}

// A line of text under a subgraph node (drawn on the canvas, not a widget: a subgraph node's
// widgets are the ones it promotes from inside, and the frontend rebuilds them).
export function showUnderNode(node, text) {
  if (node.batchProgressText === text) return;
  node.batchProgressText = text;
  if (!node.batchProgressDrawn) {
    node.batchProgressDrawn = true;
    const draw = node.onDrawForeground;
    node.onDrawForeground = function (ctx, ...rest) {
      const result = draw?.call(this, ctx, ...rest);
      if (this.batchProgressText && !this.flags?.collapsed) {
        ctx.save();
        ctx.font = "12px sans-serif";
        ctx.textAlign = "left";
        ctx.fillStyle = globalThis.LiteGraph?.NODE_TEXT_COLOR ?? "#aaa";
        ctx.fillText(this.batchProgressText, 4, this.size[1] + 16);
        ctx.restore();
      }
      return result;
    };
  }
  node.setDirtyCanvas?.(true, true);
}
