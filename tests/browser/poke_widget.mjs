// Drives the ModalPoke poke widget in ComfyUI's real front end with headless Chromium.
//
//   node tests/browser/poke_widget.mjs SERVER_URL WORKFLOW.json SCREENSHOT.png
//
// Loads the UI-format workflow (one ModalPoke node, fed a picture and a spectral volume), queues
// it, waits for the widget to show the picture, then presses on picture pixel POKE (env
// GID_POKE="x,y", default the centre) and drags by GID_DRAG="dx,dy" picture pixels (default
// 40,10). It prints one JSON object: the widget values after the drag, how many distinct
// canvas frames were seen while the scene swung, the preview's frame timing (frames per
// second of the animation and milliseconds of computation per frame), and the browser's
// errors the pack's scripts logged. tests/integration/test_poke.py runs it; Chromium is
// /usr/bin/chromium unless GID_CHROMIUM says otherwise.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { launchChromium } from "./chromium.mjs";

const [serverURL, workflowPath, screenshotPath] = process.argv.slice(2);
// How long the animation is watched after the drag for its frame timing.
const TIMING_SECONDS = 2;

const browser = await launchChromium();
try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    // The front end logs errors of its own (offline look-ups, a missing user.css); only the
    // pack's are the widget's business.
    const extensionErrors = [];
    const ours = (text) => /modal_poke|modal_dynamics|ModalPoke|gid_poke/.test(text);
    page.on("console", (message) => {
        if (message.type() === "error" && ours(message.text())) extensionErrors.push(message.text());
    });
    page.on("pageerror", (error) => {
        if (ours(error.stack ?? String(error))) extensionErrors.push(String(error));
    });

    await page.addInitScript(() => {
        window.pokeNode = () => (window.app?.graph?.nodes ?? []).find((node) => node.type === "ModalPoke");
    });
    // A first visit counts as a new user, whose blank workflow and templates dialog would
    // replace the one loaded here and cover the widget.
    await fetch(`${serverURL}/api/settings/Comfy.TutorialCompleted`, { method: "POST", body: "true" });
    await page.goto(serverURL);
    await page.waitForFunction(() => window.app?.graph && window.app.canvas, null, { timeout: 60_000 });
    const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));
    await page.evaluate((graph) => window.app.loadGraphData(graph), workflow);
    await page.evaluate(() => window.app.queuePrompt(0, 1));
    await page.waitForFunction(() => pokeNode()?.gidPoke?.scene, null, { timeout: 180_000 });

    // Make the node wide enough to show the picture at about its own size, near the top left.
    await page.evaluate(() => {
        const node = pokeNode();
        node.setSize([560, node.computeSize()[1] + 300]);
        const canvas = window.app.canvas;
        canvas.ds.scale = 1;
        canvas.ds.offset[0] = 420 - node.pos[0];
        canvas.ds.offset[1] = 120 - node.pos[1];
        canvas.setDirty(true, true);
    });
    await page.waitForTimeout(1000); // the DOM widget follows the canvas on its next draws

    const view = await page.evaluate(() => {
        const preview = pokeNode().gidPoke;
        const rect = preview.canvas.getBoundingClientRect();
        const picture = preview.scene.picture;
        return {
            left: rect.left,
            top: rect.top,
            width: rect.width,
            height: rect.height,
            pictureWidth: picture.width,
            pictureHeight: picture.height,
        };
    });
    const scale = Math.min(view.width / view.pictureWidth, view.height / view.pictureHeight);
    const toScreen = (x, y) => [
        view.left + (view.width - view.pictureWidth * scale) / 2 + (x + 0.5) * scale,
        view.top + (view.height - view.pictureHeight * scale) / 2 + (y + 0.5) * scale,
    ];
    const [pokeX, pokeY] = (process.env.GID_POKE ?? `${view.pictureWidth >> 1},${view.pictureHeight >> 1}`)
        .split(",")
        .map(Number);
    const [dragX, dragY] = (process.env.GID_DRAG ?? "40,10").split(",").map(Number);
    // Dialogs and toasts of the front end could lie over the picture; a press would hit them.
    for (let attempt = 0; ; attempt++) {
        const onTop = await page.evaluate(
            ([x, y]) => document.elementFromPoint(x, y) === pokeNode().gidPoke.canvas,
            toScreen(pokeX, pokeY),
        );
        if (onTop) break;
        if (attempt === 10) {
            await page.screenshot({ path: screenshotPath });
            throw new Error(`something covers the poke widget; see the screenshot ${screenshotPath}`);
        }
        await page.keyboard.press("Escape");
        await page.waitForTimeout(500);
    }
    const before = await canvasHash(page);
    await page.mouse.move(...toScreen(pokeX, pokeY));
    await page.mouse.down();
    await page.mouse.move(...toScreen(pokeX + dragX, pokeY + dragY), { steps: 8 });
    const held = await canvasHash(page);
    await page.mouse.up();
    const releasedAt = await page.evaluate(() => performance.now());

    const hashes = new Set();
    for (let i = 0; i < 10; i++) {
        hashes.add(await canvasHash(page));
        await page.waitForTimeout(100);
    }
    await page.waitForTimeout(Math.max(0, TIMING_SECONDS * 1000 - 1000));
    await page.screenshot({ path: screenshotPath });
    const timing = await page.evaluate((since) => {
        const { frameTimes, computeMs } = pokeNode().gidPoke.stats;
        const first = frameTimes.findIndex((time) => time >= since);
        const times = frameTimes.slice(first);
        const costs = computeMs.slice(first).sort((a, b) => a - b);
        return {
            frames: times.length,
            fps: (times.length - 1) / ((times.at(-1) - times[0]) / 1000),
            medianComputeMs: costs[costs.length >> 1],
        };
    }, releasedAt);
    const values = await page.evaluate(() => {
        const poke = pokeNode().widgets.filter((widget) => ["x", "y", "dx", "dy"].includes(widget.name));
        return Object.fromEntries(poke.map((widget) => [widget.name, widget.value]));
    });
    const prompt = await page.evaluate(async () => (await window.app.graphToPrompt()).output);
    console.log(
        JSON.stringify({
            values,
            promptInputs: Object.values(prompt).find((node) => node.class_type === "ModalPoke").inputs,
            heldChangedPicture: held !== before,
            distinctFramesAfterRelease: hashes.size,
            ...timing,
            extensionErrors,
        }),
    );
} finally {
    await browser.close();
}

/** A digest of the preview canvas's pixels. */
async function canvasHash(page) {
    const pixels = await page.evaluate(() => {
        const { canvas } = pokeNode().gidPoke;
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        return Array.from(data.filter((_, i) => i % 97 === 0));
    });
    return createHash("sha1").update(Uint8Array.from(pixels)).digest("hex");
}
