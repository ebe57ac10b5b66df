"""The motion brush: paint where and how things move, no trained model needed
(``gid_models.brush``), and the combination of two spectral volumes."""

from __future__ import annotations

import dataclasses
import functools

from ..gid_models.brush import COMBINE_MODES, brush_spectral_volume, combine_spectral_volumes
from ..gid_models.materials import load_materials, measure_material
from . import types
from .comfy_io import image_to_tensor, mask_to_tensor
from .spectral_nodes import require_volume

FROM_VOLUME = "from volume"


@functools.lru_cache(maxsize=1)
def materials():
    """The pack's material table (``gid_models/materials.json``), read once."""
    return load_materials()


class MotionBrush:
    DESCRIPTION = (
        "Paints motion onto a photo without a model: inside the MASK, random motion with the "
        "statistics of a real material (foliage, grass, water, flame, fabric; measured on real "
        "clips), or of any spectral volume ('from volume', e.g. Video to Spectral Volume of a "
        "reference clip). The result is a spectral volume like a predicted one: Spectrum to "
        "Motion makes a seamless loop of it, Modal Poke makes it pokeable. Nothing outside the "
        "mask moves; the video's first frame is the photo itself."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.SPECTRAL_VOLUME, "FLOAT")
    RETURN_NAMES = ("spectral_volume", "fps")
    OUTPUT_TOOLTIPS = (
        "The brushed spectral volume, in pixels, at most 512 px on its longer side (the renderer resizes the motion to the photo).",
        "Its frame rate (the fps input): connect it to Spectrum to Motion's fps.",
    )
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": (
                    "IMAGE",
                    {"tooltip": "The photo: it gives the motion's size and, with structure on, its edges."},
                ),
                "mask": (
                    "MASK",
                    {
                        "tooltip": "Where things move (1) and where they stay still (0); any size, e.g. painted on the photo in the Mask Editor."
                    },
                ),
                "material": (
                    sorted(materials()) + [FROM_VOLUME],
                    {
                        "default": "foliage",
                        "tooltip": "How the painted region moves: a material measured on real clips, or 'from volume' to copy the motion style of the reference_volume input.",
                    },
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": 3.0,
                        "min": 0.0,
                        "max": 200.0,
                        "step": 0.1,
                        "tooltip": "How far a painted pixel swings, in pixels of the photo (mean amplitude over all bands).",
                    },
                ),
                "direction": (
                    ["material", "angle"],
                    {
                        "tooltip": "material: the material's own split between sideways and up-down motion; angle: along the angle below."
                    },
                ),
                "angle": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 180.0,
                        "step": 1.0,
                        "tooltip": "With direction = angle: the axis of the motion in degrees (0 = sideways, 90 = up and down).",
                    },
                ),
                "spread": (
                    "FLOAT",
                    {
                        "default": 20.0,
                        "min": 0.0,
                        "max": 90.0,
                        "step": 1.0,
                        "tooltip": "With direction = angle: how far the motion strays from the axis, in degrees (0 = only along it, 90 = every direction alike).",
                    },
                ),
                "speed": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.1,
                        "max": 10.0,
                        "step": 0.05,
                        "tooltip": "2 moves twice as fast as the material, 0.5 half as fast.",
                    },
                ),
                "structure": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Let the motion follow the photo's edges, so that one leaf or branch moves as one.",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "tooltip": "Seed of the random motion; the same seed gives the same volume.",
                    },
                ),
                "num_bands": (
                    "INT",
                    {
                        "default": 16,
                        "min": 2,
                        "max": 76,
                        "tooltip": "K, frequency bands of the volume (16 in the paper; match a volume you combine it with).",
                    },
                ),
                "fps": (
                    "FLOAT",
                    {
                        "default": 30.0,
                        "min": 1.0,
                        "max": 240.0,
                        "step": 0.1,
                        "tooltip": "Frame rate of the volume's window (30 in the paper).",
                    },
                ),
                "window": (
                    "INT",
                    {
                        "default": 150,
                        "min": 4,
                        "max": 10000,
                        "tooltip": "Frames of one loop at fps (150 = 5 s in the paper).",
                    },
                ),
                "feather": (
                    "FLOAT",
                    {
                        "default": 8.0,
                        "min": 0.0,
                        "max": 500.0,
                        "step": 1.0,
                        "tooltip": "Width, in pixels of the photo, of the mask's soft edge (it fades inside the mask).",
                    },
                ),
            },
            "optional": {
                "reference_volume": (
                    types.SPECTRAL_VOLUME,
                    {
                        "tooltip": "With material = 'from volume': a spectral volume in pixels whose motion style (spectrum, coherence, direction) is brushed onto the photo."
                    },
                ),
            },
        }

    def run(
        self,
        image,
        mask,
        material,
        strength,
        direction,
        angle,
        spread,
        speed,
        structure,
        seed,
        num_bands,
        fps,
        window,
        feather,
        reference_volume=None,
    ):
        pixels = image_to_tensor(image)
        if pixels.shape[0] != 1:
            raise ValueError(f"image is a batch of {pixels.shape[0]}; brush one photo at a time")
        height, width = pixels.shape[-2:]
        if material == FROM_VOLUME:
            if reference_volume is None:
                raise ValueError(
                    "material is 'from volume' but no reference_volume is connected; connect a "
                    "spectral volume (e.g. Video to Spectral Volume of a reference clip) or choose a material"
                )
            reference = require_volume(reference_volume, "reference_volume")
            # A batch of volumes: the first one sets the style, as for one reference clip.
            first = dataclasses.replace(reference, coeffs=reference.coeffs[:1])
            statistics = measure_material(first, name="reference")
        elif material in materials():
            statistics = materials()[material]
        else:
            raise ValueError(f"material {material!r} is not one of {sorted(materials()) + [FROM_VOLUME]}")
        painted = mask_to_tensor(mask, 1)[0, 0]
        volume = brush_spectral_volume(
            painted,
            statistics,
            (height, width),
            strength=strength,
            direction=None if direction == "material" else angle,
            spread=spread,
            speed=speed,
            seed=seed,
            image=pixels if structure else None,
            num_bands=num_bands,
            fps=fps,
            window=window,
            feather=feather,
        )
        return (volume, volume.fps)


class CombineSpectralVolumes:
    DESCRIPTION = (
        "Adds two spectral volumes, or blends the second over the first, optionally inside a "
        "MASK: brushed motion over a predicted one, or two materials in one photo. Both animate "
        "the first volume's picture; the result is on the finer of their two grids. Both need "
        "the same bands, fps and window."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.SPECTRAL_VOLUME,)
    RETURN_NAMES = ("spectral_volume",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "spectral_volume": (
                    types.SPECTRAL_VOLUME,
                    {"tooltip": "The first volume, in pixels: the result animates its picture."},
                ),
                "other": (
                    types.SPECTRAL_VOLUME,
                    {"tooltip": "The second volume, in pixels (stretched over the first's picture)."},
                ),
                "mode": (
                    list(COMBINE_MODES),
                    {
                        "tooltip": "add: both motions at once; blend: the second replaces the first where the mask (times weight) is 1."
                    },
                ),
                "weight": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 10.0,
                        "step": 0.05,
                        "tooltip": "Share of the second volume (1 = all of it).",
                    },
                ),
            },
            "optional": {
                "mask": (
                    "MASK",
                    {
                        "tooltip": "Where the second volume counts (1) or not (0); any size. Everywhere when not connected."
                    },
                ),
            },
        }

    def run(self, spectral_volume, other, mode, weight, mask=None):
        base = require_volume(spectral_volume)
        second = require_volume(other, "other")
        weights = None
        if mask is not None:
            weights = mask_to_tensor(mask, base.batch_size)[:, 0]
        return (combine_spectral_volumes(base, second, mode=mode, weight=weight, mask=weights),)


NODE_CLASS_MAPPINGS = {
    "MotionBrush": MotionBrush,
    "CombineSpectralVolumes": CombineSpectralVolumes,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MotionBrush": "Motion Brush (GID)",
    "CombineSpectralVolumes": "Combine Spectral Volumes (GID)",
}
