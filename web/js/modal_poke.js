/**
 * The ModalPoke node's poke widget: pick the poke on the picture and watch the response live.
 *
 * After the node has run once, its UI output `gid_poke` names two files in ComfyUI's temp folder
 * (see nodes/dynamics_nodes.py): the picture, and the spectral volume packed as int8. The widget
 * shows the picture inside the node. Press on it to choose the poked pixel, drag to set the
 * force, and let go: the point and the drag go into the node's x, y, dx and dy widgets (so they
 * are saved with the workflow and used by the next run), and the picture responds at once,
 * simulated and warped in the browser by modal_dynamics.js with the node's strength, kind,
 * alpha, beta, frequency_factor and time_step. While a 'release' poke is held, the picture
 * shows the pull; an 'impulse' is given when the button is let go.
 *
 * `node.gidPoke` is the PokePreview of a node; its `stats` record the frame timing.
 */

import { api } from "../../../scripts/api.js";
import { app } from "../../../scripts/app.js";
import { BackwardWarp, ModalBasis, ModalSimulator, synthesizeMotion } from "./modal_dynamics.js";

const NODE_CLASS = "ModalPoke";
// The preview keeps up with the display but simulates at most this much per frame, as the
// authors' demo does: a stalled frame slows the motion down rather than making it jump.
const LONGEST_FRAME_SECONDS = 1 / 30;
// Frame timings kept for `stats` (about five seconds at 60 fps).
const STATS_LENGTH = 300;

class PokePreview {
    constructor(node) {
        this.node = node;
        this.canvas = document.createElement("canvas");
        this.canvas.width = 512;
        this.canvas.height = 288;
        Object.assign(this.canvas.style, {
            width: "100%",
            height: "100%",
            objectFit: "contain",
            touchAction: "none",
            cursor: "crosshair",
            display: "block",
        });
        this.context = this.canvas.getContext("2d", { willReadFrequently: true });
        const container = document.createElement("div");
        container.appendChild(this.canvas);
        this.widget = node.addDOMWidget("poke_preview", "gid_poke", container, {
            serialize: false,
            hideOnZoom: false,
            getMinHeight: () => 200,
        });
        this.widget.serialize = false; // not a value of the node: keeps widgets_values as the inputs
        this.scene = null; // {basis, simulator, warp, picture, motion, output} once the node has run
        this.drag = null; // {x, y, kind} in picture pixels while the button is held
        this.animation = 0;
        this.lastFrameTime = 0;
        this.stats = { frames: 0, frameTimes: [], computeMs: [] };
        this.canvas.addEventListener("pointerdown", (event) => this.onPointerDown(event));
        this.canvas.addEventListener("pointermove", (event) => this.onPointerMove(event));
        this.canvas.addEventListener("pointerup", (event) => this.onPointerUp(event));
        this.showMessage("Queue the workflow once to pick the poke on the picture.");
    }

    /** Fetch the picture and the packed basis of a run and show them. */
    async load(entry) {
        const [picture, steps] = await Promise.all([
            loadPicture(viewURL(entry.image)),
            api.fetchApi(viewPath(entry.basis)).then((response) => response.arrayBuffer()),
        ]);
        const basis = new ModalBasis(new Int8Array(steps), entry, picture.width, picture.height);
        this.scene = {
            entry,
            basis,
            picture,
            warp: new BackwardWarp(picture, basis),
            motion: new Float32Array(2 * basis.width * basis.height),
            output: new ImageData(picture.width, picture.height),
            simulator: null,
        };
        this.canvas.width = picture.width;
        this.canvas.height = picture.height;
        this.simulator(); // checks the parameters
        this.draw();
    }

    /** A simulator with the node's current parameters, so edits apply to the next poke. */
    simulator() {
        const scene = this.scene;
        scene.simulator = new ModalSimulator(scene.basis, {
            alpha: this.value("alpha"),
            beta: this.value("beta"),
            frequencyFactor: this.value("frequency_factor"),
            timeStep: this.value("time_step"),
        });
        return scene.simulator;
    }

    value(name) {
        return this.node.widgets.find((widget) => widget.name === name)?.value;
    }

    setValue(name, value) {
        const widget = this.node.widgets.find((candidate) => candidate.name === name);
        if (widget) widget.value = value;
    }

    /** Picture pixels per volume pixel, along x and y. */
    pictureScale() {
        const { entry, picture } = this.scene;
        return [picture.width / entry.volume_width, picture.height / entry.volume_height];
    }

    /** Where a pointer event falls on the picture, in picture pixels (object-fit: contain). */
    picturePoint(event) {
        const rect = this.canvas.getBoundingClientRect();
        const scale = Math.min(rect.width / this.canvas.width, rect.height / this.canvas.height);
        const left = rect.left + (rect.width - this.canvas.width * scale) / 2;
        const top = rect.top + (rect.height - this.canvas.height * scale) / 2;
        return [(event.clientX - left) / scale, (event.clientY - top) / scale];
    }

    onPointerDown(event) {
        // The graph canvas would otherwise drag the node around.
        event.preventDefault();
        event.stopPropagation();
        if (!this.scene || event.button !== 0) return;
        const [x, y] = this.picturePoint(event);
        if (x < 0 || y < 0 || x >= this.canvas.width || y >= this.canvas.height) return;
        this.canvas.setPointerCapture(event.pointerId);
        // The poked pixel is the one pressed; the force is measured from the press itself.
        this.drag = { x: Math.floor(x), y: Math.floor(y), pressX: x, pressY: y, kind: this.value("kind") };
        this.simulator();
        this.onPointerMove(event);
    }

    onPointerMove(event) {
        if (!this.drag) return;
        event.stopPropagation();
        const [x, y] = this.picturePoint(event);
        this.drag.forceX = x - this.drag.pressX;
        this.drag.forceY = y - this.drag.pressY;
        if (this.drag.kind === "release") this.pokeNow();
        this.play();
    }

    onPointerUp(event) {
        if (!this.drag) return;
        event.stopPropagation();
        this.onPointerMove(event);
        const [scaleX, scaleY] = this.pictureScale();
        const { x, y, forceX, forceY } = this.drag;
        this.setValue("x", Math.min(this.scene.entry.volume_width - 1, Math.floor(x / scaleX)));
        this.setValue("y", Math.min(this.scene.entry.volume_height - 1, Math.floor(y / scaleY)));
        this.setValue("dx", Math.round((10 * forceX) / scaleX) / 10);
        this.setValue("dy", Math.round((10 * forceY) / scaleY) / 10);
        this.node.setDirtyCanvas(true, true);
        this.pokeNow();
        this.drag = null;
        this.play();
    }

    /** Poke the simulation from rest with the drag, times the node's strength. */
    pokeNow() {
        const { x, y, forceX, forceY, kind } = this.drag;
        const strength = this.value("strength");
        this.scene.simulator.poke(x, y, strength * forceX, strength * forceY, kind);
    }

    play() {
        if (!this.animation) this.animation = requestAnimationFrame((time) => this.frame(time));
    }

    frame(time) {
        this.animation = 0;
        const simulator = this.scene.simulator;
        const elapsed = this.lastFrameTime ? (time - this.lastFrameTime) / 1000 : 0;
        this.lastFrameTime = time;
        // A held 'release' poke stays pulled; everything else moves on in real time.
        const held = this.drag && this.drag.kind === "release";
        if (!held && simulator.stable) simulator.advance(Math.min(elapsed, LONGEST_FRAME_SECONDS));
        const start = performance.now();
        this.draw();
        this.record(time, performance.now() - start);
        if (this.drag || (simulator.stable && simulator.moving())) {
            this.play();
        } else {
            this.lastFrameTime = 0;
        }
    }

    /** The picture moved by the current modal state, with the poke drawn over it. */
    draw() {
        const { scene } = this;
        if (!scene.simulator.stable) {
            this.showMessage(
                `Unstable: time_step must be below ${scene.simulator.largestStableStep.toFixed(5)} s ` +
                    "for these beta and frequency_factor.",
            );
            return;
        }
        synthesizeMotion(scene.simulator, scene.motion);
        scene.warp.render(scene.motion, scene.output.data);
        this.context.putImageData(scene.output, 0, 0);
        this.drawPoke();
    }

    /** The poked pixel as a ring and the force as an arrow, from the drag or the widgets. */
    drawPoke() {
        let x, y, forceX, forceY;
        if (this.drag) {
            ({ pressX: x, pressY: y, forceX, forceY } = this.drag);
        } else {
            const [scaleX, scaleY] = this.pictureScale();
            [x, y] = [(this.value("x") + 0.5) * scaleX, (this.value("y") + 0.5) * scaleY];
            [forceX, forceY] = [this.value("dx") * scaleX, this.value("dy") * scaleY];
        }
        const context = this.context;
        const radius = Math.max(4, this.canvas.width / 60);
        context.save();
        context.lineWidth = Math.max(2, this.canvas.width / 150);
        context.strokeStyle = "rgba(255, 255, 255, 0.9)";
        context.shadowColor = "black";
        context.shadowBlur = 2;
        context.beginPath();
        context.arc(x, y, radius, 0, 2 * Math.PI);
        context.moveTo(x, y);
        context.lineTo(x + forceX, y + forceY);
        const length = Math.hypot(forceX, forceY);
        if (length > radius) {
            const angle = Math.atan2(forceY, forceX);
            for (const side of [-0.5, 0.5]) {
                context.moveTo(x + forceX, y + forceY);
                context.lineTo(
                    x + forceX - radius * 1.5 * Math.cos(angle + side),
                    y + forceY - radius * 1.5 * Math.sin(angle + side),
                );
            }
        }
        context.stroke();
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
    }
}

function viewPath(file) {
    const { filename, subfolder, type } = file;
    const query = new URLSearchParams({ filename, subfolder, type });
    return `/view?${query}`;
}

function viewURL(file) {
    return api.apiURL(viewPath(file));
}

/** The RGBA pixels of an image URL. */
async function loadPicture(url) {
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
            this.gidPoke = new PokePreview(this);
            this.setSize([Math.max(this.size[0], 400), this.size[1] + 240]);
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
            this.gidPoke?.stop();
            return onRemoved?.apply(this, arguments);
        };
    },
});
