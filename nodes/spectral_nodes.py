"""Nodes around the spectral volume: make one from a video, inspect, edit, save, load, and turn
it into the motion of a video (paper Sec. 4.1 and 4.2)."""

from __future__ import annotations

from gid_models.motion import MotionTexture
from gid_models.spectral import SpectralVolume
from gid_models.visualize import band_amplitude_grid, motion_colors

from . import types
from .comfy_io import mask_to_tensor, tensor_to_image


def require_volume(volume, name: str = "spectral_volume") -> SpectralVolume:
    if not isinstance(volume, SpectralVolume):
        raise ValueError(f"{name} must be a {types.SPECTRAL_VOLUME}, got {type(volume).__name__}")
    return volume


class SpectrumToMotion:
    DESCRIPTION = (
        "Turns a spectral volume into the motion of a video: the displacement of every pixel at "
        "every frame (paper Sec. 4.1, inverse FFT at any time). With the defaults, 150 frames at "
        "30 fps make one seamless loop. Slow motion, magnification and a start time are free; "
        "an optional MASK limits the motion to a region."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.MOTION,)
    RETURN_NAMES = ("motion",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "spectral_volume": (types.SPECTRAL_VOLUME, {"tooltip": "Spectral volume in pixels (denormalized)."}),
                "frames": ("INT", {"default": 150, "min": 1, "max": 100000,
                                   "tooltip": "Number of video frames to make. The window of the volume (150) gives exactly one loop."}),
                "fps": ("FLOAT", {"default": 30.0, "min": 0.1, "max": 240.0, "step": 0.1,
                                  "tooltip": "Playback frame rate of the video. Frame n shows the scene at start_time + n / (fps * time_scale) seconds."}),
                "time_scale": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 100.0, "step": 0.01,
                                         "tooltip": "Slow-motion factor: 2 plays the motion twice as slowly, 0.5 twice as fast."}),
                "amplitude": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05,
                                        "tooltip": "Multiplies the motion: above 1 magnifies it, below 1 calms it, 0 freezes it."}),
                "start_time": ("FLOAT", {"default": 0.0, "min": -1000.0, "max": 1000.0, "step": 0.1,
                                         "tooltip": "Scene time of the first frame, in seconds."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Scales the motion per pixel (1 = as predicted, 0 = still). Must have the spectral volume's size."}),
            },
        }

    def run(self, spectral_volume, frames, fps, time_scale, amplitude, start_time, mask=None):
        volume = require_volume(spectral_volume)
        volume.require_pixels("SpectrumToMotion")
        motion_mask = None
        if mask is not None:
            motion_mask = mask_to_tensor(mask, volume.height, volume.width, volume.batch_size)
            motion_mask = motion_mask.to(volume.device)
        motion = MotionTexture.from_spectral_volume(
            volume, num_frames=frames, fps=fps, time_scale=time_scale, amplitude=amplitude,
            start_time=start_time, mask=motion_mask,
        )
        return (motion,)


class PreviewSpectralVolume:
    DESCRIPTION = (
        "Pictures of a spectral volume: the amplitude map of every frequency band (each scaled to "
        "its own range, frequency written in the tile) and a flow-colour image of how far and in "
        "which direction each pixel swings (hue = direction, brightness = distance)."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("band_amplitudes", "motion_colors")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "spectral_volume": (types.SPECTRAL_VOLUME, {"tooltip": "Spectral volume in pixels (denormalized)."}),
                "columns": ("INT", {"default": 4, "min": 1, "max": 32, "tooltip": "Band tiles per row of the amplitude grid."}),
            }
        }

    def run(self, spectral_volume, columns):
        volume = require_volume(spectral_volume)
        volume.require_pixels("PreviewSpectralVolume")
        return (tensor_to_image(band_amplitude_grid(volume, columns)), tensor_to_image(motion_colors(volume)))


NODE_CLASS_MAPPINGS = {
    "SpectrumToMotion": SpectrumToMotion,
    "PreviewSpectralVolume": PreviewSpectralVolume,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SpectrumToMotion": "Spectrum to Motion (GID)",
    "PreviewSpectralVolume": "Preview Spectral Volume (GID)",
}
