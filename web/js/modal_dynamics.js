/**
 * Interactive dynamics in the browser: the simulation and the warp of the ModalPoke live preview.
 *
 * The physics are those of gid_models/modal.py (read its docstring first), run at display rate
 * on the spectral volume that gid_models.modal.export_modal_basis packs for the browser:
 *
 *   q_f'' + gamma_f q_f' + omega_f^2 q_f = 0,   omega_f = 2 pi f frequency_factor,
 *   gamma_f = alpha + beta omega_f^2,           F_t(p) = Re( sum_{f > 0} S_f(p) q_f(t) ),
 *
 * integrated with the same semi-implicit Euler sub-steps, a poke's modal force
 * c conj(F . S_f(p)) normalized as there, pokes at their own times, and the anchors' mask m(p)
 * multiplied into the motion. The picture is moved by a backward warp: preview pixel
 * p shows the picture at p - F_t(p). The renderer pushes pixels forward to p + F_t(p) instead;
 * the two differ only where the motion changes much over one displacement, and a backward warp
 * is a gather, which a browser does at display rate on a CPU.
 *
 * Nothing here touches the DOM or ComfyUI, so Node.js runs it too (tests/browser/).
 */

/** A poked pixel less mobile than this fraction of the most mobile one responds less (modal.py). */
export const MIN_MOBILITY = 0.2;

/** Share of an anchor's radius held completely still (ANCHOR_CORE of modal.py). */
export const ANCHOR_CORE = 0.5;

/** Bands whose motion stays under this many pixels everywhere are not synthesized. */
const NEGLIGIBLE_PIXELS = 0.01;

/** The oscillating bands of a spectral volume, in pixels of the picture they animate. */
export class ModalBasis {
    /**
     * @param {Int8Array} steps - [bands, 4, height, width] quantized coefficients: per band
     *     (Re x, Im x, Re y, Im y), in int8 steps of header.scales[band] pixels of the grid.
     * @param {object} header - from the ModalPoke UI output: width and height of the grid,
     *     frequencies (Hz) and scales (pixels per step) of each band.
     * @param {number} pictureWidth - width in pixels of the picture the motion moves.
     * @param {number} pictureHeight - height in pixels of that picture.
     */
    constructor(steps, header, pictureWidth, pictureHeight) {
        this.width = header.width;
        this.height = header.height;
        this.pictureWidth = pictureWidth;
        this.pictureHeight = pictureHeight;
        this.frequencies = Float64Array.from(header.frequencies);
        this.bands = this.frequencies.length;
        const size = this.width * this.height;
        if (steps.length !== this.bands * 4 * size) {
            const expected = `${this.bands} bands x 4 x ${this.width} x ${this.height}`;
            throw new Error(`the packed basis has ${steps.length} values, not ${expected}`);
        }
        // Displacements are measured in pixels of the picture, so x and y are stretched apart.
        const axisScale = [pictureWidth / this.width, pictureHeight / this.height];
        this.channels = new Float32Array(steps.length);
        this.energy = new Float32Array(this.bands * size); // ||S_f(p)||^2
        this.peak = new Float64Array(this.bands); // largest ||S_f(p)|| over the pixels
        for (let band = 0; band < this.bands; band++) {
            for (let channel = 0; channel < 4; channel++) {
                const scale = header.scales[band] * axisScale[channel >> 1];
                const offset = (band * 4 + channel) * size;
                for (let i = 0; i < size; i++) {
                    this.channels[offset + i] = steps[offset + i] * scale;
                }
            }
            const [reX, imX, reY, imY] = this.bandChannels(band);
            const energy = this.energy.subarray(band * size, (band + 1) * size);
            let peak = 0;
            for (let i = 0; i < size; i++) {
                energy[i] = reX[i] * reX[i] + imX[i] * imX[i] + reY[i] * reY[i] + imY[i] * imY[i];
                peak = Math.max(peak, energy[i]);
            }
            this.peak[band] = Math.sqrt(peak);
        }
    }

    /** The four channels (Re x, Im x, Re y, Im y) of a band, each [height * width]. */
    bandChannels(band) {
        const size = this.width * this.height;
        return [0, 1, 2, 3].map((channel) =>
            this.channels.subarray((band * 4 + channel) * size, (band * 4 + channel + 1) * size),
        );
    }

    /** Index in the grid of the cell under picture pixel (x, y). */
    gridIndex(x, y) {
        const column = Math.round(((x + 0.5) * this.width) / this.pictureWidth - 0.5);
        const row = Math.round(((y + 0.5) * this.height) / this.pictureHeight - 0.5);
        const clamp = (value, size) => Math.min(size - 1, Math.max(0, value));
        return clamp(row, this.height) * this.width + clamp(column, this.width);
    }
}

/** Largest sub-step (s) at which semi-implicit Euler is stable for omega (rad/s) and gamma (1/s). */
export function largestStableStep(omega, gamma) {
    // Solves h^2 omega^2 + 2 h gamma = 4 (ModalParameters.check_stable in modal.py).
    return 4 / (gamma + Math.sqrt(gamma * gamma + 4 * omega * omega));
}

/** Sub-steps per output frame: the fewest of at most timeStep (ModalParameters.sub_steps_per_frame). */
export function subStepsPerFrame(fps, timeStep) {
    // The tolerance keeps 1/240 s at 30 fps at 8 sub-steps despite rounding, as in modal.py.
    return Math.max(1, Math.ceil(1 / (fps * timeStep) - 1e-9));
}

/**
 * The modal coordinates of every band, driven by pokes at their own times and integrated by
 * semi-implicit Euler, as gid_models.modal.simulate: same sub-step, a poke acts at the sub-step
 * nearest its time, and a poke at a frame's sub-step shows in that frame.
 */
export class ModalSimulator {
    /**
     * @param {ModalBasis} basis - the bands (their frequencies and shapes).
     * @param {object} parameters - alpha (1/s), beta (s), frequencyFactor, timeStep (s) and fps:
     *     as the ModalPoke node's inputs. The sub-step is the longest of at most timeStep that
     *     divides the frame interval 1 / fps.
     */
    constructor(basis, { alpha, beta, frequencyFactor, timeStep, fps }) {
        this.basis = basis;
        this.omega = basis.frequencies.map((frequency) => 2 * Math.PI * frequency * frequencyFactor);
        this.gamma = this.omega.map((omega) => alpha + beta * omega * omega);
        this.timeStep = 1 / (fps * subStepsPerFrame(fps, timeStep));
        this.largestStableStep = Math.min(
            ...Array.from(this.omega, (omega, band) => largestStableStep(omega, this.gamma[band])),
        );
        this.stable = this.timeStep < this.largestStableStep;
        const bands = basis.bands;
        this.positionRe = new Float64Array(bands);
        this.positionIm = new Float64Array(bands);
        this.velocityRe = new Float64Array(bands);
        this.velocityIm = new Float64Array(bands);
        this.mobility = {}; // per kind: the mobility m(p) of every grid cell and its largest value
        this.kicks = []; // {step, kind, re, im} of every poke, by sub-step
        this.now = 0; // the sub-step the state is at
        this.nextKick = 0; // index in kicks of the first kick not yet given
        this.unsimulated = 0; // seconds of real time not yet covered by whole sub-steps
    }

    /** Seconds since the first frame of the state. */
    get time() {
        return this.now * this.timeStep;
    }

    /**
     * m(p) = sum_f g_f ||S_f(p)||^2 of every grid cell, with g_f = 1 for a release and 1 / omega_f
     * for an impulse (the normalization of modal.py), and its largest value; computed once per kind.
     */
    mobilityOf(kind) {
        if (!this.mobility[kind]) {
            const { basis } = this;
            const size = basis.width * basis.height;
            const values = new Float64Array(size);
            for (let band = 0; band < basis.bands; band++) {
                const gain = kind === "impulse" ? 1 / this.omega[band] : 1;
                const energy = basis.energy.subarray(band * size, (band + 1) * size);
                for (let i = 0; i < size; i++) values[i] += gain * energy[i];
            }
            this.mobility[kind] = { values, largest: values.reduce((a, b) => Math.max(a, b), 0) };
        }
        return this.mobility[kind];
    }

    /**
     * The modal force c conj(F . S_f(p)) of a poke, normalized as in gid_models/modal.py.
     * @param {number} x - column of the poked pixel in the picture.
     * @param {number} y - row of the poked pixel.
     * @param {number} forceX - force to the right, picture pixels.
     * @param {number} forceY - force downwards, picture pixels.
     * @param {"release"|"impulse"} kind - which quantity the force is added to.
     * @returns {{re: Float64Array, im: Float64Array}} one complex value per band.
     */
    modalForce(x, y, forceX, forceY, kind) {
        const { basis } = this;
        const pixel = basis.gridIndex(x, y);
        const mobility = this.mobilityOf(kind);
        const scale = Math.max(mobility.values[pixel], MIN_MOBILITY * MIN_MOBILITY * mobility.largest);
        const re = new Float64Array(basis.bands);
        const im = new Float64Array(basis.bands);
        if (scale === 0) return { re, im };
        for (let band = 0; band < basis.bands; band++) {
            const [reX, imX, reY, imY] = basis.bandChannels(band);
            // conj(F . S) / scale with F real: (F . Re S - i F . Im S) / scale.
            re[band] = (forceX * reX[pixel] + forceY * reY[pixel]) / scale;
            im[band] = -(forceX * imX[pixel] + forceY * imY[pixel]) / scale;
        }
        return { re, im };
    }

    /**
     * The pokes to simulate, replacing earlier ones; the state starts over from rest.
     * @param {Array<{x: number, y: number, forceX: number, forceY: number, time: number,
     *     kind: "release"|"impulse"}>} pokes - in picture pixels, time in seconds >= 0.
     */
    setPokes(pokes) {
        this.kicks = pokes
            .map(({ x, y, forceX, forceY, time, kind }) => ({
                step: Math.round(time / this.timeStep),
                kind,
                ...this.modalForce(x, y, forceX, forceY, kind),
            }))
            .sort((a, b) => a.step - b.step);
        this.restart();
    }

    /** Back to rest at time 0, then the pokes at time 0. */
    restart() {
        for (const state of [this.positionRe, this.positionIm, this.velocityRe, this.velocityIm]) {
            state.fill(0);
        }
        this.now = 0;
        this.nextKick = 0;
        this.unsimulated = 0;
        this.kickDue();
    }

    /** Give the pokes due at the current sub-step. */
    kickDue() {
        while (this.nextKick < this.kicks.length && this.kicks[this.nextKick].step === this.now) {
            const { kind, re, im } = this.kicks[this.nextKick++];
            const [stateRe, stateIm] =
                kind === "impulse" ? [this.velocityRe, this.velocityIm] : [this.positionRe, this.positionIm];
            for (let band = 0; band < this.basis.bands; band++) {
                stateRe[band] += re[band];
                stateIm[band] += im[band];
            }
        }
    }

    /** The time of the last poke in seconds (0 without pokes). */
    lastPokeTime() {
        return this.kicks.length ? this.kicks[this.kicks.length - 1].step * this.timeStep : 0;
    }

    /** Run as many whole sub-steps as fit in `seconds` plus what earlier calls left over. */
    advance(seconds) {
        this.unsimulated += seconds;
        const count = Math.floor(this.unsimulated / this.timeStep);
        this.unsimulated -= count * this.timeStep;
        this.stepTo(this.now + count);
    }

    /** Restart and run to the sub-step nearest `seconds`, pokes due there given. */
    seek(seconds) {
        this.restart();
        this.stepTo(Math.round(seconds / this.timeStep));
    }

    /** Sub-steps up to sub-step `target`, giving every poke on the way when its sub-step comes. */
    stepTo(target) {
        while (this.now < target) {
            const next = this.nextKick < this.kicks.length ? this.kicks[this.nextKick].step : Infinity;
            const stop = Math.min(target, next);
            this.step(stop - this.now);
            this.now = stop;
            this.kickDue();
        }
    }

    /** `count` sub-steps: acceleration from the current state, then velocity, then position. */
    step(count) {
        const h = this.timeStep;
        for (let band = 0; band < this.basis.bands; band++) {
            const stiffness = this.omega[band] * this.omega[band];
            const damping = this.gamma[band];
            let qRe = this.positionRe[band];
            let qIm = this.positionIm[band];
            let vRe = this.velocityRe[band];
            let vIm = this.velocityIm[band];
            // The bands are independent, so each runs all its sub-steps in registers.
            for (let i = 0; i < count; i++) {
                vRe += h * (-damping * vRe - stiffness * qRe);
                vIm += h * (-damping * vIm - stiffness * qIm);
                qRe += h * vRe;
                qIm += h * vIm;
            }
            this.positionRe[band] = qRe;
            this.positionIm[band] = qIm;
            this.velocityRe[band] = vRe;
            this.velocityIm[band] = vIm;
        }
    }

    /** Whether some band still moves a pixel by a visible amount, now or within its swing. */
    moving() {
        for (let band = 0; band < this.basis.bands; band++) {
            const swing =
                Math.hypot(this.positionRe[band], this.positionIm[band]) +
                Math.hypot(this.velocityRe[band], this.velocityIm[band]) / this.omega[band];
            if (swing * this.basis.peak[band] >= NEGLIGIBLE_PIXELS) return true;
        }
        return false;
    }
}

/**
 * The damping mask of static anchors, gid_models.modal.anchor_mask on a grid: 0 within
 * ANCHOR_CORE of an anchor's radius, s(t) = 3 t^2 - 2 t^3 up to the radius, 1 beyond it; several
 * anchors multiply.
 * @param {Array<{x: number, y: number, radius: number}>} anchors - in pixels of the grid, pixel
 *     centres at whole numbers.
 * @param {number} width - columns of the grid.
 * @param {number} height - rows of the grid.
 * @returns {Float32Array|null} [height * width] in [0, 1], or null without anchors.
 */
export function anchorMask(anchors, width, height) {
    if (!anchors.length) return null;
    const mask = new Float32Array(width * height).fill(1);
    for (const { x, y, radius } of anchors) {
        const core = ANCHOR_CORE / (1 - ANCHOR_CORE);
        const reach = radius * (1 - ANCHOR_CORE);
        // Only the cells within the radius change; the rest keep their value (times 1).
        const top = Math.max(0, Math.floor(y - radius));
        const bottom = Math.min(height - 1, Math.ceil(y + radius));
        const left = Math.max(0, Math.floor(x - radius));
        const right = Math.min(width - 1, Math.ceil(x + radius));
        for (let row = top; row <= bottom; row++) {
            for (let column = left; column <= right; column++) {
                const t = Math.min(1, Math.max(0, Math.hypot(column - x, row - y) / reach - core));
                mask[row * width + column] *= t * t * (3 - 2 * t);
            }
        }
    }
    return mask;
}

/**
 * F_t(p) = m(p) Re(sum_f S_f(p) q_f(t)) on the basis's grid, in picture pixels.
 * @param {ModalSimulator} simulator - the modal state (and its basis).
 * @param {Float32Array} motion - [2, height, width] of the grid, overwritten: x then y.
 * @param {Float32Array|null} mask - [height * width] from anchorMask, or null for none.
 */
export function synthesizeMotion(simulator, motion, mask = null) {
    const { basis } = simulator;
    const size = basis.width * basis.height;
    const motionX = motion.subarray(0, size);
    const motionY = motion.subarray(size, 2 * size);
    motion.fill(0);
    for (let band = 0; band < basis.bands; band++) {
        const qRe = simulator.positionRe[band];
        const qIm = simulator.positionIm[band];
        // A band that has died down moves nothing visibly: skipping it is most of the speed-up.
        if (Math.hypot(qRe, qIm) * basis.peak[band] < NEGLIGIBLE_PIXELS) continue;
        const [reX, imX, reY, imY] = basis.bandChannels(band);
        for (let i = 0; i < size; i++) {
            motionX[i] += reX[i] * qRe - imX[i] * qIm;
            motionY[i] += reY[i] * qRe - imY[i] * qIm;
        }
    }
    if (mask) {
        for (let i = 0; i < size; i++) {
            motionX[i] *= mask[i];
            motionY[i] *= mask[i];
        }
    }
}

/** Backward warp of a picture by a motion on a coarser grid, both bilinearly interpolated. */
export class BackwardWarp {
    /**
     * @param {{width: number, height: number, data: Uint8ClampedArray}} picture - RGBA pixels.
     * @param {ModalBasis} basis - gives the grid the motion lives on.
     */
    constructor(picture, basis) {
        this.picture = picture;
        this.gridWidth = basis.width;
        // Where each picture column and row falls on the grid (the same for every frame).
        [this.column0, this.column1, this.columnWeight] = interpolationTable(picture.width, basis.width);
        [this.row0, this.row1, this.rowWeight] = interpolationTable(picture.height, basis.height);
    }

    /**
     * @param {Float32Array} motion - [2, gridHeight, gridWidth] from synthesizeMotion.
     * @param {Uint8ClampedArray} output - RGBA [height, width, 4] of the picture's size.
     */
    render(motion, output) {
        const { width, height, data } = this.picture;
        const size = motion.length / 2;
        const gridWidth = this.gridWidth;
        for (let y = 0; y < height; y++) {
            const top = this.row0[y] * gridWidth;
            const bottom = this.row1[y] * gridWidth;
            const down = this.rowWeight[y];
            for (let x = 0; x < width; x++) {
                const a = this.column0[x];
                const b = this.column1[x];
                const right = this.columnWeight[x];
                const moveX = bilinear(motion, top, bottom, a, b, right, down);
                const moveY = bilinear(motion, size + top, size + bottom, a, b, right, down);
                const sourceX = Math.min(width - 1, Math.max(0, x - moveX));
                const sourceY = Math.min(height - 1, Math.max(0, y - moveY));
                const x0 = sourceX | 0;
                const y0 = sourceY | 0;
                const x1 = Math.min(x0 + 1, width - 1);
                const y1 = Math.min(y0 + 1, height - 1);
                const tx = sourceX - x0;
                const ty = sourceY - y0;
                const p00 = (y0 * width + x0) * 4;
                const p01 = (y0 * width + x1) * 4;
                const p10 = (y1 * width + x0) * 4;
                const p11 = (y1 * width + x1) * 4;
                const target = (y * width + x) * 4;
                for (let c = 0; c < 3; c++) {
                    const upper = data[p00 + c] + (data[p01 + c] - data[p00 + c]) * tx;
                    const lower = data[p10 + c] + (data[p11 + c] - data[p10 + c]) * tx;
                    output[target + c] = upper + (lower - upper) * ty;
                }
                output[target + 3] = 255;
            }
        }
    }
}

/** Bilinear interpolation of one grid channel between rows (top, bottom) and columns (a, b). */
function bilinear(values, top, bottom, a, b, right, down) {
    const upper = values[top + a] + (values[top + b] - values[top + a]) * right;
    const lower = values[bottom + a] + (values[bottom + b] - values[bottom + a]) * right;
    return upper + (lower - upper) * down;
}

/** For each of `size` pixels, the two grid cells around its centre and the weight of the second. */
function interpolationTable(size, gridSize) {
    const first = new Int32Array(size);
    const second = new Int32Array(size);
    const weight = new Float32Array(size);
    for (let i = 0; i < size; i++) {
        // Pixel centres align (align_corners=False, as the renderer resizes motion).
        const position = Math.min(gridSize - 1, Math.max(0, ((i + 0.5) * gridSize) / size - 0.5));
        first[i] = Math.floor(position);
        second[i] = Math.min(first[i] + 1, gridSize - 1);
        weight[i] = position - first[i];
    }
    return [first, second, weight];
}
