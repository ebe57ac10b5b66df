// Runs the browser's modal simulation (web/js/modal_dynamics.js) in Node.js, for
// tests/unit/gid_models/test_modal.py to compare with gid_models.modal.poke_motion.
//
//   node tests/browser/simulate_pokes.mjs CASE.json
//
// CASE.json: {"basis": PATH of int8 data, "header": export header, "pokes": [{x, y, forceX,
// forceY, time, kind}], "anchors": [{x, y, radius}], "parameters": {alpha, beta,
// frequencyFactor, timeStep, fps}, "frames": N}. The picture is the basis's own grid, so pokes
// and anchors are in its pixels. Prints {"re": [N][K-1], "im": ...}, the modal positions at
// every frame, "motion": [N][2 * h * w], the masked motion of every frame, and "mask": [h * w].

import { readFileSync } from "node:fs";
import {
    anchorMask,
    ModalBasis,
    ModalSimulator,
    subStepsPerFrame,
    synthesizeMotion,
} from "../../web/js/modal_dynamics.js";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const steps = new Int8Array(readFileSync(spec.basis));
const { header, parameters } = spec;
const basis = new ModalBasis(steps, header, header.width, header.height);
const simulator = new ModalSimulator(basis, parameters);
simulator.setPokes(spec.pokes);
const mask = anchorMask(spec.anchors, basis.width, basis.height);
const stepsPerFrame = subStepsPerFrame(parameters.fps, parameters.timeStep);

const motion = new Float32Array(2 * basis.width * basis.height);
const re = [];
const im = [];
const motions = [];
for (let frame = 0; frame < spec.frames; frame++) {
    simulator.stepTo(frame * stepsPerFrame);
    re.push(Array.from(simulator.positionRe));
    im.push(Array.from(simulator.positionIm));
    synthesizeMotion(simulator, motion, mask);
    motions.push(Array.from(motion));
}
process.stdout.write(JSON.stringify({ re, im, motion: motions, mask: Array.from(mask) }));
