// Drives the ModalPoke poke widget in ComfyUI's real front end with headless Chromium.
//
//   node tests/browser/poke_widget.mjs SERVER_URL WORKFLOW.json SCREENSHOT.png PLAN_JSON
//
// The workflow feeds one ModalPoke node a Load Image picture and a spectral volume. PLAN_JSON:
// {"before": [DRAG...], "after": [DRAG...], "deleted": DRAG, "swapTo": FILE}, each DRAG {"from":
// [x, y], "to": [x, y], "anchor": bool, "time": seconds or absent}, points in fractions of the
// picture. The script
//
// 1. loads the workflow and, before any run, waits for the widget to show Load Image's picture,
//    makes the "before" drags (an anchor with shift held; after a poke's drag it types the poke's
//    time in the time field, if given) and reads the node's inputs back from app.graphToPrompt();
// 2. queues the workflow, waits for the live preview, makes the "after" drags (the first one is
//    watched while held and after its release), makes the "deleted" drag and right-clicks its
//    start, reads the inputs again, then presses Play and counts, over TIMING_SECONDS, the frames
//    the preview draws and the display's requestAnimationFrame callbacks;
// 3. selects FILE in Load Image and waits for the widget to show it.
//
// It prints one JSON object: the front end's version and mode, the picture shown before the run
// (its source, size and mean colour), the inputs read before and after the run, whether holding a
// poke moved the picture, how many distinct frames followed its release, the preview's frame rate,
// the display's, the median milliseconds of computation per frame, the picture shown after the
// swap (its source and whether the run's preview was dropped), and the browser's errors that the
// pack's scripts logged. tests/integration/test_poke.py runs it; Chromium is /usr/bin/chromium
// unless GID_CHROMIUM says otherwise, the mode GID_NODES_MODE's (see chromium.mjs).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { launchChromium, openComfyUI } from "./chromium.mjs";

const [serverURL, workflowPath, screenshotPath, planJSON] = process.argv.slice(2);
const plan = JSON.parse(planJSON);
// How long the preview's frame rate is measured.
const TIMING_SECONDS = 2;

const browser = await launchChromium();
try {
    // The front end logs errors of its own (offline look-ups, a missing user.css); only the
    // pack's are the widget's business.
    const extensionErrors = [];
    const ours = (text) => /modal_poke|modal_dynamics|ModalPoke|gid_poke/.test(text);
    const { page, frontEndVersion, mode } = await openComfyUI(browser, serverURL, {
        beforeLoad: async (page) => {
            page.on("console", (message) => {
                if (message.type() === "error" && ours(message.text())) extensionErrors.push(message.text());
            });
            page.on("pageerror", (error) => {
                if (ours(error.stack ?? String(error))) extensionErrors.push(String(error));
            });
            await page.addInitScript(() => {
                window.pokeNode = () =>
                    (window.app?.graph?.nodes ?? []).find((node) => node.type === "ModalPoke");
            });
        },
    });
    const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));
    await page.evaluate((graph) => window.app.loadGraphData(graph), workflow);

    // Before any run: the picture of Load Image.
    await page.waitForFunction(() => pokeNode()?.gidPoke?.picture, null, { timeout: 30_000 });
    await showNode(page);
    const pictureBeforeRun = await page.evaluate(() => {
        const editor = pokeNode().gidPoke;
        const { width, height } = editor.canvas;
        const data = editor.canvas.getContext("2d").getImageData(0, 0, width, height).data;
        const mean = [0, 0, 0];
        for (let i = 0; i < data.length; i += 4) for (let c = 0; c < 3; c++) mean[c] += data[i + c];
        return {
            source: JSON.parse(editor.picture.key),
            ranBefore: editor.scene !== null,
            width,
            height,
            meanColour: mean.map((sum) => sum / (width * height)),
        };
    });
    for (const drag of plan.before) await dragOn(page, drag);
    const inputsBeforeRun = await modalPokeInputs(page);

    // After a run: the live preview.
    await page.evaluate(() => window.app.queuePrompt(0, 1));
    await page.waitForFunction(() => pokeNode()?.gidPoke?.scene?.simulator, null, { timeout: 180_000 });
    await showNode(page);
    const [held, ...rest] = plan.after;
    // The run's preview plays the pokes; stopped, the picture holds still until the next drag.
    await page.evaluate(() => pokeNode().gidPoke.stop());
    const still = await canvasHash(page);
    const heldHash = await dragOn(page, held, { whileHeld: () => canvasHash(page) });
    const hashes = new Set();
    for (let i = 0; i < 10; i++) {
        hashes.add(await canvasHash(page));
        await page.waitForTimeout(100);
    }
    for (const drag of rest) await dragOn(page, drag);
    await dragOn(page, plan.deleted);
    await page.mouse.click(...(await screenPoint(page, plan.deleted.from)), { button: "right" });
    const inputsAfterRun = await modalPokeInputs(page);

    await page.evaluate(() => pokeNode().gidPoke.replay());
    const timing = await page.evaluate(async (seconds) => {
        const editor = pokeNode().gidPoke;
        const since = performance.now();
        let callbacks = 0;
        await new Promise((resolve) => {
            const tick = () => {
                callbacks += 1;
                if (performance.now() - since < seconds * 1000) requestAnimationFrame(tick);
                else resolve();
            };
            requestAnimationFrame(tick);
        });
        const elapsed = (performance.now() - since) / 1000;
        const { frameTimes, computeMs } = editor.stats;
        const first = frameTimes.findIndex((time) => time >= since);
        const drawn = first < 0 ? 0 : frameTimes.length - first;
        const costs = computeMs.slice(first).sort((a, b) => a - b);
        return {
            previewFps: drawn / elapsed,
            displayFps: callbacks / elapsed,
            medianComputeMs: costs[costs.length >> 1] ?? null,
            stillPlaying: editor.playing,
        };
    }, TIMING_SECONDS);
    await page.screenshot({ path: screenshotPath });

    await page.evaluate((file) => {
        const loader = window.app.graph.nodes.find((node) => node.type === "LoadImage");
        const widget = loader.widgets.find((candidate) => candidate.name === "image");
        widget.value = file;
        widget.callback?.(file);
    }, plan.swapTo);
    await page.waitForFunction(
        (file) => pokeNode().gidPoke.picture?.key.includes(file),
        plan.swapTo,
        { timeout: 10_000 },
    );
    const afterSwap = await page.evaluate(() => {
        const editor = pokeNode().gidPoke;
        return { source: JSON.parse(editor.picture.key), sceneDropped: editor.scene === null };
    });
    console.log(
        JSON.stringify({
            frontEndVersion,
            mode,
            pictureBeforeRun,
            inputsBeforeRun,
            inputsAfterRun,
            heldChangedPicture: heldHash !== still,
            distinctFramesAfterRelease: hashes.size,
            ...timing,
            afterSwap,
            extensionErrors,
        }),
    );
} finally {
    await browser.close();
}

/** Put the node at scale 1 near the top left, large enough to show the picture at about its size. */
async function showNode(page) {
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
}

/** The screen point of a point of the picture given in fractions (object-fit: contain). */
async function screenPoint(page, [x, y]) {
    return page.evaluate(
        ([x, y]) => {
            const { canvas } = pokeNode().gidPoke;
            const rect = canvas.getBoundingClientRect();
            const scale = Math.min(rect.width / canvas.width, rect.height / canvas.height);
            return [
                rect.left + (rect.width - canvas.width * scale) / 2 + x * canvas.width * scale,
                rect.top + (rect.height - canvas.height * scale) / 2 + y * canvas.height * scale,
            ];
        },
        [x, y],
    );
}

/** Press at drag.from, move to drag.to and let go; the result of whileHeld() before letting go. */
async function dragOn(page, drag, { whileHeld } = {}) {
    const from = await screenPoint(page, drag.from);
    const to = await screenPoint(page, drag.to);
    await uncover(page, from);
    if (drag.anchor) await page.keyboard.down("Shift");
    await page.mouse.move(...from);
    await page.mouse.down();
    await page.mouse.move(...to, { steps: 8 });
    const heldResult = whileHeld ? await whileHeld() : undefined;
    await page.mouse.up();
    if (drag.anchor) await page.keyboard.up("Shift");
    if (drag.time !== undefined) {
        // The dragged poke is selected: the time field sets its time.
        const field = await page.evaluateHandle(() => pokeNode().gidPoke.timeInput);
        await field.fill(String(drag.time));
        await field.press("Tab"); // leaving the field commits it
    }
    return heldResult;
}

/** Dialogs and toasts of the front end could lie over the picture; a press would hit them. */
async function uncover(page, point) {
    for (let attempt = 0; ; attempt++) {
        const onTop = await page.evaluate(
            ([x, y]) => document.elementFromPoint(x, y) === pokeNode().gidPoke.canvas,
            point,
        );
        if (onTop) return;
        if (attempt === 10) {
            await page.screenshot({ path: screenshotPath });
            throw new Error(`something covers the poke widget; see the screenshot ${screenshotPath}`);
        }
        await page.keyboard.press("Escape");
        await page.waitForTimeout(500);
    }
}

/** The inputs of the ModalPoke node in app.graphToPrompt()'s prompt. */
async function modalPokeInputs(page) {
    const prompt = await page.evaluate(async () => (await window.app.graphToPrompt()).output);
    return Object.values(prompt).find((node) => node.class_type === "ModalPoke").inputs;
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
