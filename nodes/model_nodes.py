"""Motion-model nodes: load a motion LDM (and its renderer) and predict a spectral volume from an
image (paper Sec. 4.2)."""

from __future__ import annotations

import os

import comfy.model_management
import comfy.model_patcher
import torch

from ..gid_models import pipeline
from ..gid_models.hub import DTYPES, ModelFolderError, download_model_folder
from ..gid_models.ldm import CONFIG_FILE, MotionLDM
from ..gid_models.renderer import CONFIG_FILE as RENDERER_CONFIG_FILE
from ..gid_models.renderer import ImageBasedRenderer
from ..gid_models.sampling import SCHEDULERS, SamplingStep
from ..gid_models.visualize import motion_colors
from . import types
from .comfy_io import Progress, compute_device, image_to_tensor
from .folders import DEFAULT_MODEL, gid_model_dirs

HUB_CACHE_FOLDER = "hub"
# Decoding a preview costs a VAE pass; about ten previews per sampling run are enough to watch.
PREVIEWS_PER_RUN = 10


def local_model_folders() -> list[str]:
    """Names of the motion-model folders (holding config.json) under models/gid, the pack's own
    default model first."""
    names = set()
    for root in gid_model_dirs():
        if os.path.isdir(root):
            names.update(
                name
                for name in os.listdir(root)
                if name != HUB_CACHE_FOLDER and os.path.isfile(os.path.join(root, name, CONFIG_FILE))
            )
    return sorted(names, key=lambda name: (name != DEFAULT_MODEL, name))


def unwrap_motion_model(model) -> MotionLDM:
    """The MotionLDM inside a GID_MOTION_MODEL (a ComfyUI ModelPatcher), with a clear error."""
    inner = getattr(model, "model", None)
    if not isinstance(inner, MotionLDM):
        raise ValueError(
            f"model must be a {types.MOTION_MODEL} from LoadMotionLDM, got {type(model).__name__}"
        )
    return inner


def _dtype(choice: str, device: torch.device) -> torch.dtype:
    if choice != "auto":
        return DTYPES[choice]
    if device.type == "cpu":
        return torch.float32
    return torch.bfloat16 if comfy.model_management.should_use_bf16(device) else torch.float16


class LoadMotionLDM:
    DESCRIPTION = (
        "Loads a motion model (motion VAE, frequency-coordinated denoiser, normalization "
        "statistics; paper Sec. 4.2) from a folder in models/gid, or from a Hugging Face Hub "
        "repo id, downloaded once, with its progress shown, into the folder models/gid/owner--name "
        "(owner--name@revision for another revision), which the model list shows after a refresh "
        "and which loads offline afterwards. When the folder also holds a trained renderer, it is "
        "loaded too."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.MOTION_MODEL, types.RENDERER)
    RETURN_NAMES = ("motion_model", "renderer")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        folders = local_model_folders() or ["(no model in models/gid)"]
        return {
            "required": {
                "model": (
                    folders,
                    {
                        "tooltip": (
                            "A model folder in models/gid (config.json, vae.safetensors, unet.safetensors); "
                            f"{DEFAULT_MODEL} is the small model shipped with the pack (CPU-friendly, 128x80 motion)."
                        ),
                    },
                ),
                "hub_repo_id": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Hugging Face Hub repo id (owner/name). When set, it is used instead of the folder above: downloaded once into models/gid/owner--name, which the list above shows after a refresh (R).",
                    },
                ),
                "revision": (
                    "STRING",
                    {"default": "main", "tooltip": "Branch, tag or commit of the Hub repo."},
                ),
                "dtype": (
                    ["auto", "fp32", "fp16", "bf16"],
                    {"tooltip": "Precision of the weights; auto = fp32 on CPU, bf16 or fp16 on a GPU."},
                ),
            }
        }

    def run(self, model, hub_repo_id, revision, dtype):
        search_dirs = gid_model_dirs()
        if hub_repo_id.strip():
            # A repo id only ever reaches the Hub and its cache, never a local path.
            # The files land in models/gid/owner--name, which the model list shows after a
            # refresh; the Hub cache folder keeps only its refs and listings.
            source = download_model_folder(
                hub_repo_id.strip(),
                revision=revision.strip() or None,
                download_dir=os.path.join(search_dirs[0], HUB_CACHE_FOLDER),
                search_dirs=search_dirs,
                models_dir=search_dirs[0],
                progress=Progress(1),
            )
        elif model == "(no model in models/gid)":
            raise ModelFolderError(
                f"there is no motion model in {', '.join(search_dirs)}; put a model folder there "
                "or type a Hugging Face Hub repo id"
            )
        else:
            # The folder of that name in models/gid, never a path relative to ComfyUI's folder.
            folders = (os.path.join(root, model) for root in search_dirs)
            source = next((folder for folder in folders if os.path.isdir(folder)), model)
        device = compute_device()
        motion_model = MotionLDM.from_pretrained(source, search_dirs=search_dirs, dtype=_dtype(dtype, device))
        patcher = comfy.model_patcher.ModelPatcher(
            motion_model, load_device=device, offload_device=comfy.model_management.unet_offload_device()
        )
        renderer = None
        if os.path.isfile(os.path.join(motion_model.source_folder, RENDERER_CONFIG_FILE)):
            # Loaded on the offload device and moved by ComfyUI's model management when a render
            # needs it, like the motion model, so that it is offloaded when memory is short.
            renderer = comfy.model_patcher.ModelPatcher(
                ImageBasedRenderer.from_pretrained(motion_model.source_folder),
                load_device=device,
                offload_device=comfy.model_management.unet_offload_device(),
            )
        return (patcher, renderer)


class PredictSpectralVolume:
    DESCRIPTION = (
        "Predicts a spectral volume (the Fourier coefficients of every pixel's motion) for an "
        "image with the motion model: all frequency bands denoised together, classifier-free "
        "guidance (paper Sec. 4.2), optional loop guidance. The result stays at the model's "
        "resolution, in its pixels, and animates the image at the image's own size (the renderer "
        "resizes the motion where it splats); a batch of images gives a batch of volumes."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.SPECTRAL_VOLUME,)
    RETURN_NAMES = ("spectral_volume",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "motion_model": (types.MOTION_MODEL, {"tooltip": "The motion model from LoadMotionLDM."}),
                "image": ("IMAGE", {"tooltip": "The still image whose motion to predict (any size)."}),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "control_after_generate": True,
                        "tooltip": "Seed of the initial noise; the same seed gives the same motion.",
                    },
                ),
                "steps": (
                    "INT",
                    {
                        "default": 250,
                        "min": 1,
                        "max": 1000,
                        "tooltip": "Denoising steps (the paper: 250 with DDIM; about 25 suffice with dpmpp_2m).",
                    },
                ),
                "cfg": (
                    "FLOAT",
                    {
                        "default": 1.75,
                        "min": 0.0,
                        "max": 20.0,
                        "step": 0.05,
                        "tooltip": "Classifier-free guidance weight w: (1 + w) eps_cond - w eps_null (the paper: 1.75).",
                    },
                ),
                "scheduler": (
                    sorted(SCHEDULERS),
                    {
                        "default": "ddim",
                        "tooltip": "Sampler: ddim as in the paper, or another diffusers scheduler.",
                    },
                ),
            },
            "optional": {
                "guidance": (
                    types.GUIDANCE,
                    {"tooltip": "Loop guidance (LoopGuidance) for a seamless loop."},
                ),
            },
        }

    def run(self, motion_model, image, seed, steps, cfg, scheduler, guidance=None):
        model = unwrap_motion_model(motion_model)
        pixels = image_to_tensor(image)
        comfy.model_management.load_models_gpu([motion_model])
        progress = Progress(steps)
        preview_every = max(1, steps // PREVIEWS_PER_RUN)

        def on_step(step: SamplingStep) -> None:
            preview = None
            if (step.index + 1) % preview_every == 0 and step.index + 1 < step.total:
                volume = model.decode_spectral_volume(step.predicted_clean())
                preview = motion_colors(volume)[0]
            progress.update(step.index + 1, step.total, preview=preview)

        volume = pipeline.predict(
            model,
            pixels,
            seed=seed,
            steps=steps,
            scheduler=scheduler,
            guidance_scale=cfg,
            guidance=guidance,
            callback=on_step,
            progress=progress,
        )
        return (volume.to(comfy.model_management.intermediate_device()),)


NODE_CLASS_MAPPINGS = {"LoadMotionLDM": LoadMotionLDM, "PredictSpectralVolume": PredictSpectralVolume}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadMotionLDM": "Load Motion LDM (GID)",
    "PredictSpectralVolume": "Predict Spectral Volume (GID)",
}
