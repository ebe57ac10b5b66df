// Runs the browser's modal simulation (web/js/modal_dynamics.js) in Node.js, for
// tests/unit/gid_models/test_modal.py to compare with gid_models.modal.simulate.
//
//   node tests/browser/simulate_pokes.mjs CASE.json
//
// CASE.json: {"basis": PATH of int8 data, "header": export header, "poke": {x, y, forceX,
// forceY, kind}, "parameters": {alpha, beta, frequencyFactor, timeStep}, "frames": N,
// "stepsPerFrame": S}. The picture is the basis's own grid. Prints {"re": [N][K-1], "im": ...},
// the modal positions at every frame, and "motion": the first frame's motion [2 * h * w].

import { readFileSync } from "node:fs";
import { ModalBasis, ModalSimulator, synthesizeMotion } from "../../web/js/modal_dynamics.js";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const steps = new Int8Array(readFileSync(spec.basis));
const { header } = spec;
const basis = new ModalBasis(steps, header, header.width, header.height);
const simulator = new ModalSimulator(basis, spec.parameters);
const { x, y, forceX, forceY, kind } = spec.poke;
simulator.poke(x, y, forceX, forceY, kind);

const motion = new Float32Array(2 * basis.width * basis.height);
synthesizeMotion(simulator, motion);
const re = [];
const im = [];
for (let frame = 0; frame < spec.frames; frame++) {
    re.push(Array.from(simulator.positionRe));
    im.push(Array.from(simulator.positionIm));
    simulator.step(spec.stepsPerFrame);
}
process.stdout.write(JSON.stringify({ re, im, motion: Array.from(motion) }));
