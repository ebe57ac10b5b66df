// Loads UI-format workflows in ComfyUI's real front end with headless Chromium and converts each
// to a prompt, as a user's "Queue" would.
//
//   node tests/browser/workflows.mjs SERVER_URL WORKFLOW.json [WORKFLOW.json ...]
//
// For every workflow it prints one line of JSON (in the order given):
//   file          the workflow's path, as given;
//   missing       the node types the front end reported missing while loading: its own
//                 missing-nodes report, app.showMissingNodesError, captured instead of shown,
//                 or in releases that list them in the Errors panel instead (1.58 on), the node
//                 types of that panel's store, "missingNodesError";
//   unregistered  the workflow's node types that LiteGraph has no class for;
//   nodes, links  how many of each the loaded graph has;
//   errors        titles of loaded nodes the front end marked with errors;
//   boxes         where each node is drawn, its title bar included: {title, x, y, width, height};
//   toasts        texts of the front end's notifications after loading (a workflow the front end
//                 had to repair or found invalid says so there);
//   prompt        the API-format prompt of app.graphToPrompt().
// tests/integration/test_workflows.py runs it; Chromium is /usr/bin/chromium unless GID_CHROMIUM
// says otherwise, and the front end's mode is GID_NODES_MODE's (see chromium.mjs).

import { readFileSync } from "node:fs";
import { launchChromium, openComfyUI } from "./chromium.mjs";

const [serverURL, ...workflowPaths] = process.argv.slice(2);

const browser = await launchChromium();
try {
    const { page } = await openComfyUI(browser, serverURL);
    await page.evaluate(() => {
        window.gidMissing = [];
        window.app.showMissingNodesError = (types) =>
            window.gidMissing.push(...types.map((type) => (typeof type === "string" ? type : type.type)));
    });
    for (const path of workflowPaths) {
        const workflow = JSON.parse(readFileSync(path, "utf8"));
        await page.evaluate(() => {
            window.gidMissing = [];
            for (const toast of document.querySelectorAll(".p-toast-message")) toast.remove();
        });
        await page.evaluate((graph) => window.app.loadGraphData(graph), workflow);
        await page.waitForTimeout(500); // notifications of the load appear on the next frames
        const report = await page.evaluate(async (graph) => {
            const app = window.app;
            const types = [...new Set(graph.nodes.map((node) => node.type))];
            // Newer releases keep the report in a Pinia store of the Vue app instead of calling
            // showMissingNodesError; it has no public API, so the store is read by its id.
            const stores = document.querySelector("#vue-app")?.__vue_app__?.config.globalProperties.$pinia?._s;
            const panel = stores?.get("missingNodesError")?.missingNodesError?.nodeTypes ?? [];
            const reported = [...window.gidMissing, ...panel.map((type) => (typeof type === "string" ? type : type.type))];
            return {
                missing: [...new Set(reported)],
                unregistered: types.filter((type) => !(type in window.LiteGraph.registered_node_types)),
                nodes: app.graph.nodes.length,
                links: Object.keys(app.graph.links instanceof Map ? Object.fromEntries(app.graph.links) : app.graph.links)
                    .length,
                errors: app.graph.nodes.filter((node) => node.has_errors).map((node) => node.title),
                boxes: app.graph.nodes.map((node) => {
                    const titleHeight = window.LiteGraph.NODE_TITLE_HEIGHT;
                    const [x, y] = node.pos;
                    const [width, height] = node.size;
                    return { title: node.title, x, y: y - titleHeight, width, height: height + titleHeight };
                }),
                toasts: [...document.querySelectorAll(".p-toast-message")].map((toast) => toast.innerText.trim()),
                prompt: (await app.graphToPrompt()).output,
            };
        }, workflow);
        console.log(JSON.stringify({ file: path, ...report }));
    }
} finally {
    await browser.close();
}
