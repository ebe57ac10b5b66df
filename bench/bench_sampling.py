"""Seconds per denoising step and per spectral volume of the motion LDM (paper Sec. 4.2).

    python bench/bench_sampling.py                      # paper config, 256x160, CPU
    python bench/bench_sampling.py --device cuda --full # on a GPU: also samples whole volumes
    python bench/bench_sampling.py --config tiny        # the test-size model

One step is one pass of the frequency-coordinated U-Net over all K bands with the conditional
and the null image in one batch (classifier-free guidance). A volume costs the image encoder,
``steps`` such passes and one VAE decode of the K slices; DDIM with 250 steps (the paper)
is compared with DPM-Solver++ with 25 steps, measured in the same run. On a CPU the paper-size
network takes tens of seconds a step, so without ``--full`` the per-volume figures are
``encode + steps x step + decode`` from the measured parts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gid_models import pipeline  # noqa: E402
from gid_models.ldm import MotionLDM, MotionLDMConfig  # noqa: E402
from gid_models.normalization import NormalizationStats  # noqa: E402
from gid_models.unet import UNetConfig  # noqa: E402
from gid_models.vae import MotionVAEConfig  # noqa: E402

SCHEDULES = (("ddim", 250), ("dpmpp_2m", 25))


def build(config_name: str, device: str, dtype: torch.dtype) -> MotionLDM:
    if config_name == "tiny":
        config = MotionLDMConfig(
            num_bands=8, resolution=(16, 24), vae=MotionVAEConfig.tiny(), unet=UNetConfig.tiny()
        )
    else:
        config = MotionLDMConfig()
    model = MotionLDM(config, NormalizationStats(torch.ones(config.num_bands)))
    return model.to(device=device, dtype=dtype).eval()


def timed(function, repeats: int, device: str, warm_up: bool = True) -> float:
    """Median seconds of ``repeats`` calls, after one warm-up call unless ``warm_up`` is False."""
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=("paper", "tiny"), default="paper")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also time whole sampling runs")
    args = parser.parse_args()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = build(args.config, args.device, dtype)
    height, width = model.config.resolution
    bands = model.config.num_bands
    latent = (2, bands, model.config.vae.latent_channels, *model.config.latent_size)
    image = torch.rand(1, 3, height, width, device=args.device, dtype=dtype)
    features = model.unet.encode_image(image)
    paired = torch.cat([features, torch.zeros_like(features)])
    z = torch.randn(latent, device=args.device, dtype=dtype)
    timestep = torch.tensor(500, device=args.device)

    parameters = sum(p.numel() for p in model.unet.parameters()) / 1e6
    print(
        f"config {args.config}: {width}x{height}, K={bands}, U-Net {parameters:.1f} M parameters, "
        f"device {args.device}, {args.dtype}, torch threads {torch.get_num_threads()}"
    )
    encode = timed(lambda: model.unet.encode_image(image), args.repeats, args.device)
    step = timed(lambda: model.unet(z, timestep, paired), args.repeats, args.device)
    decode = timed(lambda: model.vae.decode_latents(z[:1]), args.repeats, args.device)
    print(f"image encoder          {encode:9.3f} s")
    print(f"one denoising step     {step:9.3f} s   (CFG: conditional + null in one batch)")
    print(f"VAE decode of K slices {decode:9.3f} s")
    print(f"{'schedule':<16}{'steps':>6}{'s/volume (parts)':>18}{'s/volume (measured)':>22}")
    baseline = None
    for scheduler, steps in SCHEDULES:
        estimate = encode + steps * step + decode
        measured = ""
        if args.full:
            run = lambda s=scheduler, n=steps: pipeline.predict(model, image, steps=n, scheduler=s)  # noqa: E731
            # The parts above have warmed the network up; a second whole run would double the cost.
            measured = f"{timed(run, 1, args.device, warm_up=False):.2f}"
        baseline = baseline or estimate
        print(
            f"{scheduler:<16}{steps:>6}{estimate:>18.2f}{measured:>22}   ratio vs DDIM-250: {estimate / baseline:.3f}"
        )


if __name__ == "__main__":
    main()
