"""Package a trained motion model (and a renderer, if any) as one model folder, ready to share.

``python -m training.train`` writes the motion model (stage 2) and the renderer into separate
run folders. LoadMotionLDM loads a renderer that sits in the motion model's folder, so a model
to hand out is both in one folder:

    python -m training.package_model --motion runs/stage2/model --renderer runs/renderer/model \\
        --output models/gid/my-model [--dtype fp16] [--title "My model"] [--notes notes.md]

The folder holds ``config.json``, ``vae.safetensors``, ``unet.safetensors``, with
``--renderer`` also ``renderer_config.json`` and ``renderer.safetensors`` (leave it out when the
trained renderer does not beat the weight-free splat), and a ``README.md`` model card with every
training stage's section (data, steps, losses, config) and the optional notes (evaluation
figures, licences). ``--dtype fp16`` halves the files; the loaders turn the weights into
whatever precision they run in. Publish the folder to the Hugging Face Hub with

    hf upload OWNER/NAME models/gid/my-model .      # huggingface_hub's command line, after hf auth login

and load it in ComfyUI by typing ``OWNER/NAME`` into LoadMotionLDM's ``hub_repo_id``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from gid_models.hub import DTYPES, ModelFolderError
from gid_models.ldm import MotionLDM
from gid_models.renderer import ImageBasedRenderer

from .model_card import SECTION_HEADING, inherited_sections, model_card
from .renderer_stage import RendererStage

__all__ = ["main", "package_model"]

_DESCRIPTION = """\
A motion model of Generative Image Dynamics (Li et al., CVPR 2024) for the ComfyUI node pack
`comfyui-generative-image-dynamics`: the motion VAE, the frequency-coordinated denoiser and the
normalization statistics (`config.json`, `vae.safetensors`, `unet.safetensors`), and, where
the model has them, the denoiser's frozen image network (`image_encoder.safetensors`), the
amplitude prior (`amplitude_prior.safetensors`) and the image-based renderer
(`renderer_config.json`, `renderer.safetensors`).

- ComfyUI: put this folder in `models/gid/` (or type the Hub repo id into Load Motion LDM's
  `hub_repo_id`); Load Motion LDM returns the motion model and the renderer (none when the
  folder has none: Softmax Splat Render then splats weight-free).
- Python: `gid_models.ldm.MotionLDM.from_pretrained(folder)` and
  `gid_models.renderer.ImageBasedRenderer.from_pretrained(folder)`.
"""


def package_model(
    motion: str | Path,
    renderer: str | Path | None,
    output: str | Path,
    dtype: torch.dtype = torch.float32,
    title: str = "Generative Image Dynamics motion model",
    notes: str = "",
) -> Path:
    """Write the motion model of ``motion`` and the renderer of ``renderer`` into ``output``.

    Args:
        motion: a motion model folder (``MotionLDM.save_pretrained``).
        renderer: a renderer folder (``ImageBasedRenderer.save_pretrained``), or None.
        output: the folder to write (created; files of the same names are replaced).
        dtype: precision of the written weights.
        title: heading of the model card.
        notes: Markdown added to the card before the training sections.

    Returns:
        The output folder.

    Raises:
        ModelFolderError: a folder or one of its files is missing.
        ValueError: a folder's files are broken or do not match their config.
    """
    motion, output = Path(motion), Path(output)
    ldm = MotionLDM.from_pretrained(motion).to(dtype)
    # The card records the weights the folder holds: the motion model's stages, and the renderer's
    # record only from the renderer folder given. A motion model trained on from a complete model
    # folder (an earlier default model, say) inherits that folder's renderer record, and a
    # renderer that sits in one would bring that folder's motion stages along.
    renderer_heading = SECTION_HEADING + RendererStage.name
    sections = [section for section in inherited_sections(motion) if not section.startswith(renderer_heading)]
    if renderer is not None:
        image_renderer = ImageBasedRenderer.from_pretrained(renderer, dtype=dtype)
        own = [
            section for section in inherited_sections(Path(renderer)) if section.startswith(renderer_heading)
        ]
        sections = [*sections, *own]
    description = _DESCRIPTION + (f"\n{notes.strip()}\n" if notes.strip() else "")
    ldm.save_pretrained(output, model_card=model_card(title, description, sections))
    if renderer is not None:
        image_renderer.save_pretrained(output)
    return output


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.package_model",
        description="Put a trained motion model and renderer into one model folder with one model card.",
    )
    parser.add_argument(
        "--motion", required=True, type=Path, help="motion model folder (stage-2 run's model/)"
    )
    parser.add_argument(
        "--renderer", type=Path, help="renderer folder (renderer run's model/); none if left out"
    )
    parser.add_argument("--output", required=True, type=Path, help="the model folder to write")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="precision of the weights")
    parser.add_argument(
        "--title", default="Generative Image Dynamics motion model", help="model card heading"
    )
    parser.add_argument(
        "--notes", type=Path, help="Markdown file added to the model card (figures, licences)"
    )
    args = parser.parse_args(argv)
    try:
        notes = args.notes.read_text() if args.notes else ""
        folder = package_model(args.motion, args.renderer, args.output, DTYPES[args.dtype], args.title, notes)
    except (ModelFolderError, ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {folder}")


if __name__ == "__main__":
    main()
