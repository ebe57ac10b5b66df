// Headless Chromium for the browser tests, through playwright-core: /usr/bin/chromium unless
// GID_CHROMIUM says otherwise, without anything that would reach the network or a GPU.
//
// The front end's mode comes from GID_NODES_MODE: "classic" (the LiteGraph canvas, the default)
// or "nodes2" (Nodes 2.0, whose nodes are Vue components; the setting Comfy.VueNodes.Enabled).
// Which front end the server serves is the server's business (GID_FRONT_END_ROOT, see
// tests/integration/conftest.py); openComfyUI reports its version.

import { chromium } from "playwright-core";

const CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

export const NODES_MODE = process.env.GID_NODES_MODE ?? "classic";
if (!["classic", "nodes2"].includes(NODES_MODE)) {
    throw new Error(`GID_NODES_MODE must be "classic" or "nodes2", not ${JSON.stringify(NODES_MODE)}`);
}

export function launchChromium() {
    return chromium.launch({
        executablePath: process.env.GID_CHROMIUM ?? "/usr/bin/chromium",
        args: CHROMIUM_FLAGS,
    });
}

/**
 * A page of the ComfyUI at serverURL in NODES_MODE, once `window.app` is ready.
 * @returns {Promise<{page, frontEndVersion: string, mode: string}>}
 */
export async function openComfyUI(browser, serverURL, { beforeLoad } = {}) {
    const settings = {
        // A first visit counts as a new user, whose blank workflow and templates dialog would
        // replace the workflow a test loads and cover its nodes.
        "Comfy.TutorialCompleted": true,
        "Comfy.VueNodes.Enabled": NODES_MODE === "nodes2",
    };
    for (const [name, value] of Object.entries(settings)) {
        const response = await fetch(`${serverURL}/api/settings/${name}`, {
            method: "POST",
            body: JSON.stringify(value),
        });
        if (!response.ok) throw new Error(`setting ${name} failed: HTTP ${response.status}`);
    }
    const page = await browser.newPage({ viewport: { width: 1600, height: 1300 } });
    if (beforeLoad) await beforeLoad(page);
    await page.goto(serverURL);
    await page.waitForFunction(() => window.app?.graph && window.app.canvas, null, { timeout: 60_000 });
    const frontEndVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? "unknown");
    return { page, frontEndVersion, mode: NODES_MODE };
}
