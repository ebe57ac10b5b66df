"""The shipped default model on the CPU: a photo to a 150-frame seamless loop, end to end.

What the image_to_loop workflow does, timed in its parts: load ``models/gid-default``, predict
the spectral volume (dpmpp_2m, 25 steps, classifier-free guidance 1.75, with and without loop
guidance: the workflows' backward step, or with --paper-guidance Eq. 5 as in the paper), then render one
loop of 150 frames with the weight-free splat, as the shipped workflows do, and with the model's
trained renderer where its folder has one (gid-default has none: it did not beat the splat). The
baselines, timed in the same run: prediction without loop guidance, and the weight-free render.
The target: predicting and rendering a full loop in under a minute on 2 CPU cores.

Run:  .venv/bin/python bench/bench_default_model.py [--image PHOTO] [--size 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_splatting.py

import cv2  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gid_models import pipeline  # noqa: E402
from gid_models.ldm import MotionLDM  # noqa: E402
from gid_models.looping import LoopGuidance  # noqa: E402
from gid_models.renderer import CONFIG_FILE as RENDERER_CONFIG_FILE  # noqa: E402
from gid_models.renderer import ImageBasedRenderer  # noqa: E402
from gid_models.weight_free import WeightFreeRenderer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "gid-default"
WORKFLOW = REPO / "workflows_api" / "image_to_loop.json"
FRAMES = 150


def workflow_guidance() -> LoopGuidance:
    """LoopGuidance with the inputs of the shipped image_to_loop workflow's LoopGuidance node."""
    nodes = json.loads(WORKFLOW.read_text()).values()
    (inputs,) = (node["inputs"] for node in nodes if node["class_type"] == "LoopGuidance")
    return LoopGuidance(**inputs)


def load_image(path: Path | None, size: int) -> torch.Tensor:
    """``[1, 3, size, size]`` RGB in [0, 1]: the photo resized, or a textured test picture."""
    if path is None:
        ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        picture = torch.stack([0.5 + 0.4 * torch.sin(40 * xs + 9 * ys), 0.4 + 0.5 * ys, 0.6 - 0.3 * xs])
        return picture.clamp(0, 1).unsqueeze(0)
    pixels = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(pixels).permute(2, 0, 1).float().unsqueeze(0) / 255


def seconds(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def render_seconds(renderer, image, volume) -> float:
    started = time.perf_counter()
    pipeline.loop(image, volume, renderer, num_frames=FRAMES, chunk_size=8)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="photo (default: a generated test picture)")
    parser.add_argument("--size", type=int, default=512, help="the photo is resized to size x size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument(
        "--paper-guidance",
        action="store_true",
        help="loop guidance as in the paper (Eq. 5, u = 200, self-recurrence 2) instead of the workflows' backward step",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = load_image(args.image, args.size)

    load, model = seconds(lambda: MotionLDM.from_pretrained(MODEL))
    has_renderer = (MODEL / RENDERER_CONFIG_FILE).is_file()
    renderer = ImageBasedRenderer.from_pretrained(MODEL) if has_renderer else WeightFreeRenderer()

    def predict(guidance=None):
        return pipeline.predict(
            model, image, seed=0, steps=args.steps, scheduler="dpmpp_2m", guidance=guidance
        )

    predict(), render_seconds(renderer, image[..., :64, :64], predict())  # warm-up (kernels, caches)
    plain, volume = seconds(predict)
    guidance = LoopGuidance() if args.paper_guidance else workflow_guidance()
    guided, guided_volume = seconds(lambda: predict(guidance))
    weight_free = render_seconds(WeightFreeRenderer(), image, guided_volume)

    print(f"gid-default on {args.threads} CPU threads, {args.size}x{args.size} photo, {FRAMES} frames")
    print(f"  load model                      {load:6.2f} s")
    print(f"  predict, {args.steps} steps              {plain:6.2f} s")
    print(f"  predict with loop guidance      {guided:6.2f} s  ({guided / plain:.2f}x; {guidance})")
    print(
        f"  render, weight-free (baseline)  {weight_free:6.2f} s  ({weight_free / FRAMES * 1000:.0f} ms/frame)"
    )
    print(
        f"  photo -> loop, guided + weight-free render (the workflows): {guided + weight_free:.1f} s (target: under 60 s)"
    )
    if has_renderer:
        trained = render_seconds(renderer, image, guided_volume)
        print(f"  render, trained renderer        {trained:6.2f} s  ({trained / FRAMES * 1000:.0f} ms/frame)")
        print(f"  trained / weight-free render    {trained / weight_free:6.2f}x")
        print(f"  photo -> loop, guided + trained render: {guided + trained:.1f} s")


if __name__ == "__main__":
    main()
