/**
 * The ModalPoke node's poke widget: place pokes and anchors on the picture, watch the response live.
 *
 * The picture. Before any run it is the file selected in the Load Image node that feeds the node's
 * `image` input (followed through reroutes and core image-scaling nodes, which keep every point
 * at the same fraction of the picture), read from the input folder by /view and swapped when the
 * selection changes. After a run, the node's UI output `gid_poke` names the picture it used and the
 * spectral volume packed as int8 (see nodes/dynamics_nodes.py); that picture takes over, and the
 * widget simulates and warps it in the browser with modal_dynamics.js.
 *
 * Editing. Drag on the picture to add a poke: an arrow from the pressed pixel, the drag is the
 * force. Shift-drag, or drag in Anchor mode, to add a static anchor: a circle whose radius the drag
 * sets; nothing moves in its dashed core, motion fades back in up to the circle. Drag a poke's
 * start or tip, or an anchor's centre or rim, to change it; right-click one to delete it, or select
 * it and click Delete. The time field sets the selected poke's time (seconds after frame 0) and
 * the time of the pokes made next. The widget writes them into the node's `pokes` and `anchors`
 * inputs as JSON in fractions of the picture (x, dx and radius of its width, y and dy of its
 * height), which the node scales to the pixels of the picture the spectral volume animates: that
 * size is only known after a run, and a fraction stays put at any size the picture is scaled or
 * shown at. Hand edits of those inputs show on the picture. While `pokes` is empty the node uses
 * its single x, y, dx, dy, poke_time poke (in pixels of that picture), drawn dashed once a run told
 * the picture's size;
 * the first poke added then keeps it as an entry of `pokes`.
 *
 * The live preview plays the video's time line as the node renders it: from rest at time 0, every
 * poke at its own time (times the node's strength, of its kind), the anchors' mask applied, until
 * the last frame or until the scene settles after the last poke. Every edit plays it again, and so
 * does Play. While a poke is dragged the preview holds the moment of that poke, pull applied.
 *
 * `node.gidPoke` is the PokeEditor of a node; its `stats` record the frame timing.
 */

import { api } from "../../../scripts/api.js";
import { app } from "../../../scripts/app.js";
import {
    ANCHOR_CORE,
    anchorMask,
    BackwardWarp,
    ModalBasis,
    ModalSimulator,
    synthesizeMotion,
} from "./modal_dynamics.js";

const NODE_CLASS = "ModalPoke";
// The preview keeps up with the display but simulates at most this much per frame, as the
// authors' demo does: a stalled frame slows the motion down rather than making it jump.
const LONGEST_FRAME_SECONDS = 1 / 30;
// Frame timings kept for `stats` (about five seconds at 60 fps).
const STATS_LENGTH = 300;
// Longer side of the picture shown before a run: the size of the picture a run sends back
// (PREVIEW_MAX_SIZE of nodes/comfy_io.py).
const PICTURE_MAX_SIZE = 512;
// Nodes whose IMAGE output shows the picture of their `image` input at another size (or as is):
// the Load Image behind them gives the picture, since points are fractions of it.
const PASS_THROUGH = new Set([
    "Reroute",
    "ImageScale",
    "ImageScaleBy",
    "ImageScaleToMaxDimension",
    "ImageScaleToTotalPixels",
]);
// How often the widget looks at the graph: a Load Image's selection, the links and hand edits of
// `pokes` and `anchors` change without telling this node, and the two front-end modes (classic and
// Nodes 2.0) call different hooks.
const FOLLOW_MS = 400;
// Most entries of `pokes` and `anchors` (MAX_POKES, MAX_ANCHORS of nodes/dynamics_nodes.py).
const MAX_ENTRIES = 32;
// Radius of a new anchor made by a click without a drag, and the smallest one, in fractions of
// the picture's width.
const DEFAULT_RADIUS = 0.08;
const SMALLEST_RADIUS = 0.01;
// A press that drags a new poke less than this many screen pixels adds nothing (a click selects).
const SMALLEST_DRAG = 3;
// How near the pointer must come to a handle to grab it, in screen pixels.
const HANDLE_REACH = 9;

class PokeEditor {
    constructor(node) {
        this.node = node;
        this.canvas = document.createElement("canvas");
        this.canvas.width = 512;
        this.canvas.height = 288;
        Object.assign(this.canvas.style, {
            flex: "1 1 auto",
            minHeight: "0",
            width: "100%",
            objectFit: "contain",
            touchAction: "none",
            cursor: "crosshair",
            display: "block",
        });
        this.context = this.canvas.getContext("2d", { willReadFrequently: true });
        const container = document.createElement("div");
        Object.assign(container.style, { display: "flex", flexDirection: "column", height: "100%" });
        container.append(this.canvas, this.makeToolbar());
        // Pointer events inside the widget are the widget's: the graph would drag the node or pan
        // (Nodes 2.0 drags a node on any move with the button and shift held).
        for (const type of ["pointerdown", "pointermove", "pointerup", "contextmenu"]) {
            container.addEventListener(type, (event) => event.stopPropagation());
        }
        this.widget = node.addDOMWidget("poke_preview", "gid_poke", container, {
            serialize: false,
            hideOnZoom: false,
            getMinHeight: () => 240,
        });
        this.widget.serialize = false; // not a value of the node: keeps widgets_values as the inputs
        this.items = { pokes: [], anchors: [] }; // as in the inputs, in fractions of the picture
        this.itemsText = { pokes: null, anchors: null }; // the input texts they were read from
        this.selected = null; // {list: "pokes" | "anchors", index}
        this.drag = null; // {list, index, handle, added} while the button is held
        this.mode = "poke";
        this.picture = null; // {key, image} of the Load Image file shown before a run
        this.upstream = undefined; // key of the Load Image file that feeds the node, null if none
        this.scene = null; // {entry, basis, picture, warp, motion, output, simulator, mask} after a run
        this.playing = false;
        this.animation = 0;
        this.lastFrameTime = 0;
        this.stats = { frames: 0, frameTimes: [], computeMs: [] };
        this.canvas.addEventListener("pointerdown", (event) => this.onPointerDown(event));
        this.canvas.addEventListener("pointermove", (event) => this.onPointerMove(event));
        this.canvas.addEventListener("pointerup", (event) => this.onPointerUp(event));
        this.canvas.addEventListener("contextmenu", (event) => this.onContextMenu(event));
        this.follower = setInterval(() => this.follow(), FOLLOW_MS);
        this.draw();
    }

    makeToolbar() {
        const toolbar = document.createElement("div");
        Object.assign(toolbar.style, {
            display: "flex",
            gap: "4px",
            alignItems: "center",
            flexWrap: "wrap",
            padding: "2px 0",
            font: "12px sans-serif",
            color: "#ccc",
        });
        const button = (text, title, onClick) => {
            const element = document.createElement("button");
            element.textContent = text;
            element.title = title;
            element.style.font = "inherit";
            element.addEventListener("click", onClick);
            toolbar.append(element);
            return element;
        };
        this.modeButtons = {
            poke: button("Poke", "Drag on the picture to add a poke; its drag is the force.", () =>
                this.setMode("poke"),
            ),
            anchor: button(
                "Anchor",
                "Drag on the picture to add an anchor (shift-drag in Poke mode).",
                () => this.setMode("anchor"),
            ),
        };
        const label = document.createElement("label");
        label.textContent = "time (s)";
        label.title = "Time of the selected poke in seconds after frame 0, and of the pokes added next.";
        this.timeInput = document.createElement("input");
        Object.assign(this.timeInput, { type: "number", min: "0", step: "0.1", value: "0" });
        Object.assign(this.timeInput.style, { width: "4.5em", font: "inherit" });
        this.timeInput.addEventListener("change", () => this.onTimeChange());
        label.append(" ", this.timeInput);
        toolbar.append(label);
        button("Play", "Play the response again from frame 0 (after a run).", () => this.replay());
        button("Delete", "Delete the selected poke or anchor (or right-click it).", () =>
            this.deleteSelected(),
        );
        button("Clear", "Delete every poke and anchor.", () => this.clear());
        this.status = document.createElement("span");
        this.status.style.opacity = "0.8";
        toolbar.append(this.status);
        this.setMode("poke");
        return toolbar;
    }

    setMode(mode) {
        this.mode = mode;
        for (const [name, element] of Object.entries(this.modeButtons)) {
            element.style.fontWeight = name === mode ? "bold" : "normal";
            element.setAttribute("aria-pressed", String(name === mode));
        }
    }

    // --- The node's inputs ---------------------------------------------------------------------

    value(name) {
        return this.node.widgets?.find((widget) => widget.name === name)?.value;
    }

    setValue(name, value) {
        const widget = this.node.widgets?.find((candidate) => candidate.name === name);
        if (!widget) return;
        widget.value = value;
        widget.callback?.(value);
    }

    /** Read `pokes` and `anchors` when their texts changed (a workflow loaded, a hand edit). */
    readItems() {
        let changed = false;
        const problems = [];
        for (const list of ["pokes", "anchors"]) {
            const text = this.value(list) ?? "";
            if (text === this.itemsText[list]) continue;
            this.itemsText[list] = text;
            changed = true;
            try {
                const parsed = text.trim() ? JSON.parse(text) : [];
                if (!Array.isArray(parsed)) throw new Error("not a list");
                this.items[list] = parsed.filter((item) => item && typeof item === "object");
            } catch (error) {
                // The node names what is wrong when it runs; the widget shows what it can read.
                this.items[list] = [];
                problems.push(`${list}: ${error.message}`);
            }
        }
        if (changed) {
            this.status.textContent = problems.join("; ");
            this.selected = null;
        }
        return changed;
    }

    /** Write one list into its input, rounded: 1/10000 of the picture is a twentieth of a pixel at 512. */
    writeItems(list) {
        // Anything else a hand edit left is written back as it is, for the node to refuse by name.
        const round = (key, value) =>
            typeof value === "number" ? Number(value.toFixed(key === "time" ? 3 : 4)) : value;
        const items = this.items[list].map((item) =>
            Object.fromEntries(Object.entries(item).map(([key, value]) => [key, round(key, value)])),
        );
        const text = JSON.stringify(items);
        this.itemsText[list] = text;
        this.setValue(list, text);
        this.node.setDirtyCanvas?.(true, true);
    }

    /** Look at the graph: the Load Image that feeds the node, and the texts of the inputs. */
    follow() {
        const key = upstreamPicture(this.node);
        if (key !== this.upstream) {
            this.upstream = key;
            // A run's picture and basis belong to the picture it ran on.
            if (this.scene && this.scene.upstream !== key) this.setScene(null);
            if (key) this.loadInputPicture(key);
            else this.picture = null;
            this.draw();
        }
        if (this.readItems() && !this.drag) this.replay();
    }

    async loadInputPicture(key) {
        const image = new Image();
        image.src = api.apiURL(viewPath(JSON.parse(key)));
        try {
            await image.decode();
        } catch {
            if (this.upstream === key) this.status.textContent = "Load Image's picture could not be read.";
            return;
        }
        if (this.upstream !== key) return; // another file was selected meanwhile
        this.picture = { key, image };
        if (!this.scene) {
            const shrink = Math.min(1, PICTURE_MAX_SIZE / Math.max(image.naturalWidth, image.naturalHeight));
            this.canvas.width = Math.max(1, Math.round(image.naturalWidth * shrink));
            this.canvas.height = Math.max(1, Math.round(image.naturalHeight * shrink));
        }
        this.draw();
    }

    // --- After a run ---------------------------------------------------------------------------

    /** Fetch the picture and the packed basis of a run and play the pokes on them. */
    async load(entry) {
        const [picture, steps] = await Promise.all([
            loadPixels(api.apiURL(viewPath(entry.image))),
            api.fetchApi(viewPath(entry.basis)).then((response) => response.arrayBuffer()),
        ]);
        const basis = new ModalBasis(new Int8Array(steps), entry, picture.width, picture.height);
        this.setScene({
            entry,
            upstream: this.upstream,
            basis,
            picture,
            warp: new BackwardWarp(picture, basis),
            motion: new Float32Array(2 * basis.width * basis.height),
            output: new ImageData(picture.width, picture.height),
            simulator: null,
            mask: null,
        });
        this.replay();
    }

    setScene(scene) {
        this.stop();
        this.scene = scene;
        const shown = scene?.picture;
        if (shown) [this.canvas.width, this.canvas.height] = [shown.width, shown.height];
    }

    /** The pokes the preview simulates, in picture pixels: the listed ones, else the single one. */
    simulatedPokes() {
        const { picture, entry } = this.scene;
        const [width, height] = [picture.width, picture.height];
        const strength = this.value("strength");
        const kind = this.value("kind");
        const listed = this.items.pokes.length ? this.items.pokes : [this.singlePoke(entry)];
        return listed.map(({ x, y, dx, dy, time }) => ({
            x: x * width,
            y: y * height,
            forceX: strength * dx * width,
            forceY: strength * dy * height,
            time,
            kind,
        }));
    }

    /** The node's single x, y, dx, dy, poke_time poke in fractions of the picture. */
    singlePoke(entry) {
        const [width, height] = [entry.volume_width, entry.volume_height];
        return {
            x: (this.value("x") + 0.5) / width,
            y: (this.value("y") + 0.5) / height,
            dx: this.value("dx") / width,
            dy: this.value("dy") / height,
            time: this.value("poke_time") ?? 0,
        };
    }

    /** A simulator with the node's current inputs, its pokes set and at rest at time 0. */
    prepare() {
        const { scene } = this;
        scene.simulator = new ModalSimulator(scene.basis, {
            alpha: this.value("alpha"),
            beta: this.value("beta"),
            frequencyFactor: this.value("frequency_factor"),
            timeStep: this.value("time_step"),
            fps: this.value("fps"),
        });
        scene.simulator.setPokes(this.simulatedPokes());
        const { width, height } = scene.basis;
        // Fractions to the grid's pixel centres, as picture_anchors does for the picture's pixels.
        const anchors = this.items.anchors.map(({ x, y, radius }) => ({
            x: x * width - 0.5,
            y: y * height - 0.5,
            radius: radius * width,
        }));
        scene.mask = anchorMask(anchors, width, height);
        return scene.simulator;
    }

    /** Play the time line from frame 0 (just draw the edits before a run). */
    replay() {
        if (!this.scene) {
            this.draw();
            return;
        }
        this.prepare();
        this.playing = true;
        this.play();
    }

    /** Seconds from the first frame to the last of the node's video. */
    duration() {
        return Math.max(0, this.value("frames") - 1) / this.value("fps");
    }

    play() {
        if (!this.animation) this.animation = requestAnimationFrame((time) => this.frame(time));
    }

    frame(time) {
        this.animation = 0;
        const simulator = this.scene?.simulator;
        if (!simulator) return;
        const elapsed = this.lastFrameTime ? (time - this.lastFrameTime) / 1000 : 0;
        this.lastFrameTime = time;
        // A dragged poke holds its moment (set by hold); otherwise the time line moves on.
        if (!this.drag && this.playing && simulator.stable) {
            simulator.advance(Math.min(elapsed, LONGEST_FRAME_SECONDS));
        }
        const start = performance.now();
        this.draw();
        this.record(time, performance.now() - start);
        const ended =
            !simulator.stable ||
            simulator.time >= this.duration() ||
            (simulator.time >= simulator.lastPokeTime() && !simulator.moving());
        if (ended) this.playing = false;
        if (this.drag || this.playing) {
            this.play();
        } else {
            this.lastFrameTime = 0;
        }
    }

    /** Show the moment of the dragged poke with every poke as it is now (after a run). */
    hold() {
        if (!this.scene) {
            this.draw();
            return;
        }
        const simulator = this.prepare();
        const dragged = this.drag.list === "pokes" ? this.items.pokes[this.drag.index] : null;
        simulator.seek(dragged ? dragged.time : 0);
        this.play();
    }

    // --- Drawing -------------------------------------------------------------------------------

    /** The picture (moved by the current modal state after a run), the pokes and anchors over it. */
    draw() {
        const { scene } = this;
        if (scene?.simulator) {
            if (!scene.simulator.stable) {
                this.showMessage(
                    `Unstable: time_step must be below ${scene.simulator.largestStableStep.toFixed(5)} s ` +
                        "for these beta and frequency_factor.",
                );
                return;
            }
            synthesizeMotion(scene.simulator, scene.motion, scene.mask);
            scene.warp.render(scene.motion, scene.output.data);
            this.context.putImageData(scene.output, 0, 0);
        } else if (this.picture) {
            this.context.drawImage(this.picture.image, 0, 0, this.canvas.width, this.canvas.height);
        } else {
            this.showMessage("Connect a Load Image to image, or queue the workflow, to see the picture.");
        }
        this.drawItems();
    }

    drawItems() {
        const context = this.context;
        const { width, height } = this.canvas;
        // One screen pixel in canvas pixels: marks keep their size on screen at any zoom.
        const rect = this.canvas.getBoundingClientRect();
        const shown = Math.min(rect.width / width, rect.height / height);
        const unit = shown > 0 ? 1 / shown : 1;
        context.save();
        context.lineWidth = 2 * unit;
        context.shadowColor = "black";
        context.shadowBlur = 2;
        context.font = `${Math.round(11 * unit)}px sans-serif`;
        const colour = (list, index) =>
            this.selected?.list === list && this.selected.index === index
                ? "#ffd54a"
                : "rgba(255, 255, 255, 0.9)";
        this.items.anchors.forEach(({ x, y, radius }, index) => {
            context.strokeStyle = colour("anchors", index);
            context.setLineDash([]);
            circle(context, x * width, y * height, radius * width);
            // Dashed: the core the anchor holds completely still.
            context.setLineDash([4 * unit, 3 * unit]);
            circle(context, x * width, y * height, radius * width * ANCHOR_CORE);
            context.setLineDash([]);
            circle(context, x * width, y * height, 2 * unit);
        });
        const single = !this.items.pokes.length && this.scene ? [this.singlePoke(this.scene.entry)] : [];
        for (const [index, poke] of [...this.items.pokes, ...single].entries()) {
            const dashed = index >= this.items.pokes.length;
            context.strokeStyle = dashed ? "rgba(255, 255, 255, 0.7)" : colour("pokes", index);
            context.fillStyle = context.strokeStyle;
            context.setLineDash(dashed ? [4 * unit, 3 * unit] : []);
            arrow(context, poke.x * width, poke.y * height, poke.dx * width, poke.dy * height, 6 * unit);
            const label = `${dashed ? "x/y poke " : ""}${Number(poke.time.toFixed(2))} s`;
            context.fillText(label, poke.x * width + 7 * unit, poke.y * height - 7 * unit);
        }
        context.restore();
    }

    showMessage(text) {
        const context = this.context;
        context.fillStyle = "#222";
        context.fillRect(0, 0, this.canvas.width, this.canvas.height);
        context.fillStyle = "#ccc";
        context.font = `${Math.round(this.canvas.height / 16)}px sans-serif`;
        context.textAlign = "center";
        context.fillText(text, this.canvas.width / 2, this.canvas.height / 2, this.canvas.width - 20);
        context.textAlign = "start";
    }

    // --- The pointer ---------------------------------------------------------------------------

    /** Where a pointer event falls, in fractions of the picture (object-fit: contain), and the
     * size of one screen pixel in those fractions along x. */
    pointerFraction(event) {
        const rect = this.canvas.getBoundingClientRect();
        const scale = Math.min(rect.width / this.canvas.width, rect.height / this.canvas.height);
        const left = rect.left + (rect.width - this.canvas.width * scale) / 2;
        const top = rect.top + (rect.height - this.canvas.height * scale) / 2;
        const x = (event.clientX - left) / scale / this.canvas.width;
        const y = (event.clientY - top) / scale / this.canvas.height;
        return { x, y, screenPixel: 1 / (scale * this.canvas.width) };
    }

    /** The handle nearest the point within reach: {list, index, handle}, or null. */
    handleAt({ x, y, screenPixel }) {
        const aspect = this.canvas.height / this.canvas.width; // a fraction of height in widths
        const handles = [];
        this.items.pokes.forEach((poke, index) => {
            handles.push({ list: "pokes", index, handle: "tip", x: poke.x + poke.dx, y: poke.y + poke.dy });
            handles.push({ list: "pokes", index, handle: "start", x: poke.x, y: poke.y });
        });
        this.items.anchors.forEach((anchor, index) => {
            handles.push({ list: "anchors", index, handle: "centre", x: anchor.x, y: anchor.y });
            // The rim is grabbed where the pointer meets it.
            const distance = Math.hypot(x - anchor.x, (y - anchor.y) * aspect);
            if (Math.abs(distance - anchor.radius) <= HANDLE_REACH * screenPixel) {
                handles.push({ list: "anchors", index, handle: "rim", x, y });
            }
        });
        let best = null;
        let bestDistance = HANDLE_REACH * screenPixel;
        for (const handle of handles) {
            const distance = Math.hypot(handle.x - x, (handle.y - y) * aspect);
            if (distance <= bestDistance) [best, bestDistance] = [handle, distance];
        }
        return best && { list: best.list, index: best.index, handle: best.handle };
    }

    onPointerDown(event) {
        event.preventDefault();
        if (event.button !== 0 || !(this.picture || this.scene)) return;
        const point = this.pointerFraction(event);
        if (point.x < 0 || point.y < 0 || point.x > 1 || point.y > 1) return;
        let drag = this.handleAt(point);
        if (!drag) {
            const list = this.mode === "anchor" || event.shiftKey ? "anchors" : "pokes";
            if (this.items[list].length >= MAX_ENTRIES) {
                this.status.textContent = `At most ${MAX_ENTRIES} ${list} per node.`;
                return;
            }
            const single = this.scene && !this.items.pokes.length && this.singlePoke(this.scene.entry);
            if (list === "pokes" && single && onPicture(single)) {
                // The single poke was shown and simulated: it stays, as the first listed poke.
                this.items.pokes.push(single);
            }
            const { x, y } = point;
            const item =
                list === "pokes"
                    ? { x, y, dx: 0, dy: 0, time: Math.max(0, Number(this.timeInput.value) || 0) }
                    : { x, y, radius: DEFAULT_RADIUS };
            this.items[list].push(item);
            const handle = list === "pokes" ? "tip" : "rim";
            drag = { list, index: this.items[list].length - 1, handle, added: true, pressX: x, pressY: y };
        }
        this.drag = drag;
        this.select(drag.list, drag.index);
        this.canvas.setPointerCapture(event.pointerId);
        this.onPointerMove(event);
    }

    onPointerMove(event) {
        if (!this.drag) return;
        const { x, y } = this.pointerFraction(event);
        const { list, index, handle, added } = this.drag;
        const item = this.items[list][index];
        const clamp = (value, low, high) => Math.min(high, Math.max(low, value));
        if (handle === "start" || handle === "centre") {
            item.x = clamp(x, 0, 1);
            item.y = clamp(y, 0, 1);
        } else if (handle === "tip") {
            item.dx = clamp(x - item.x, -1, 1);
            item.dy = clamp(y - item.y, -1, 1);
        } else {
            const aspect = this.canvas.height / this.canvas.width;
            const reach = Math.hypot(x - item.x, (y - item.y) * aspect);
            // A new anchor keeps its default radius until the pointer leaves the press.
            const moved = !added || Math.hypot(x - this.drag.pressX, y - this.drag.pressY) > 0.01;
            if (moved) item.radius = clamp(reach, SMALLEST_RADIUS, 1);
        }
        this.hold();
    }

    onPointerUp(event) {
        if (!this.drag) return;
        this.onPointerMove(event);
        const { list, index, added } = this.drag;
        const item = this.items[list][index];
        const { screenPixel } = this.pointerFraction(event);
        const aspect = this.canvas.height / this.canvas.width;
        const dragged = Math.hypot(item.dx, item.dy * aspect);
        if (added && list === "pokes" && dragged < SMALLEST_DRAG * screenPixel) {
            this.items.pokes.splice(index, 1); // a click is not a poke
            this.selected = null;
        }
        this.drag = null;
        this.writeItems("pokes");
        this.writeItems("anchors");
        this.replay();
    }

    onContextMenu(event) {
        // Not the browser's menu (nor the graph's: the container stops the event): right-click
        // deletes what it points at.
        event.preventDefault();
        const hit = this.handleAt(this.pointerFraction(event));
        if (!hit) return;
        this.select(hit.list, hit.index);
        this.deleteSelected();
    }

    select(list, index) {
        this.selected = { list, index };
        if (list === "pokes") this.timeInput.value = String(this.items.pokes[index].time);
    }

    onTimeChange() {
        const time = Math.max(0, Number(this.timeInput.value) || 0);
        if (this.selected?.list !== "pokes") return; // the time of the pokes added next
        this.items.pokes[this.selected.index].time = time;
        this.writeItems("pokes");
        this.replay();
    }

    deleteSelected() {
        if (!this.selected) return;
        this.items[this.selected.list].splice(this.selected.index, 1);
        this.writeItems(this.selected.list);
        this.selected = null;
        this.replay();
    }

    clear() {
        this.items = { pokes: [], anchors: [] };
        this.selected = null;
        this.writeItems("pokes");
        this.writeItems("anchors");
        this.replay();
    }

    record(time, computeMs) {
        const { stats } = this;
        stats.frames += 1;
        stats.frameTimes.push(time);
        stats.computeMs.push(computeMs);
        if (stats.frameTimes.length > STATS_LENGTH) {
            stats.frameTimes.shift();
            stats.computeMs.shift();
        }
    }

    stop() {
        cancelAnimationFrame(this.animation);
        this.animation = 0;
        this.playing = false;
        this.lastFrameTime = 0;
    }

    remove() {
        this.stop();
        clearInterval(this.follower);
    }
}

/** Whether a poke in fractions lies on the picture, within the ranges the node accepts. */
function onPicture({ x, y, dx, dy }) {
    return x >= 0 && x <= 1 && y >= 0 && y <= 1 && Math.abs(dx) <= 1 && Math.abs(dy) <= 1;
}

function circle(context, x, y, radius) {
    context.beginPath();
    context.arc(x, y, radius, 0, 2 * Math.PI);
    context.stroke();
}

/** A ring at (x, y) and an arrow from it along (dx, dy), in canvas pixels. */
function arrow(context, x, y, dx, dy, radius) {
    context.beginPath();
    context.arc(x, y, radius, 0, 2 * Math.PI);
    context.moveTo(x, y);
    context.lineTo(x + dx, y + dy);
    if (Math.hypot(dx, dy) > radius) {
        const angle = Math.atan2(dy, dx);
        for (const side of [-0.5, 0.5]) {
            context.moveTo(x + dx, y + dy);
            context.lineTo(
                x + dx - radius * 1.5 * Math.cos(angle + side),
                y + dy - radius * 1.5 * Math.sin(angle + side),
            );
        }
    }
    context.stroke();
}

/**
 * The file of the Load Image node whose picture reaches the node's `image` input (through
 * PASS_THROUGH nodes), as the JSON of its /view query {filename, subfolder, type}; null if none.
 */
function upstreamPicture(node) {
    let target = node;
    let slot = node.findInputSlot?.("image") ?? -1;
    // A bounded walk: a graph could hold a loop of reroutes.
    for (let hop = 0; hop < 32 && slot >= 0; hop++) {
        const source = target.getInputNode?.(slot);
        if (!source) return null;
        if (source.type === "LoadImage") {
            const name = source.widgets?.find((widget) => widget.name === "image")?.value;
            return typeof name === "string" && name ? JSON.stringify(inputFile(name)) : null;
        }
        if (!PASS_THROUGH.has(source.type)) return null;
        target = source;
        slot = source.type === "Reroute" ? 0 : source.findInputSlot("image");
    }
    return null;
}

/** Load Image's value ("sub/folder/name.png", maybe annotated " [output]") as a /view file. */
function inputFile(value) {
    const annotated = /^(.*) \[(input|output|temp)\]$/.exec(value);
    const [path, type] = annotated ? [annotated[1], annotated[2]] : [value, "input"];
    const cut = path.lastIndexOf("/");
    return { filename: path.slice(cut + 1), subfolder: cut < 0 ? "" : path.slice(0, cut), type };
}

function viewPath(file) {
    const { filename, subfolder, type } = file;
    const query = new URLSearchParams({ filename, subfolder, type });
    return `/view?${query}`;
}

/** The RGBA pixels of an image URL. */
async function loadPixels(url) {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    return context.getImageData(0, 0, canvas.width, canvas.height);
}

app.registerExtension({
    name: "GenerativeImageDynamics.ModalPoke",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData.name !== NODE_CLASS) return;
        const onNodeCreated = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const result = onNodeCreated?.apply(this, arguments);
            this.gidPoke = new PokeEditor(this);
            this.setSize([Math.max(this.size[0], 400), this.size[1] + 270]);
            return result;
        };
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (output) {
            onExecuted?.apply(this, arguments);
            const entry = output?.gid_poke?.[0];
            if (entry) {
                this.gidPoke.load(entry).catch((error) => {
                    console.error("ModalPoke preview:", error);
                    this.gidPoke.showMessage(`The preview could not load: ${error.message}`);
                });
            }
        };
        const onRemoved = nodeType.prototype.onRemoved;
        nodeType.prototype.onRemoved = function () {
            this.gidPoke?.remove();
            return onRemoved?.apply(this, arguments);
        };
    },
});
