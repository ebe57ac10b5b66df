"""Nodes around the spectral volume: make one from a video, inspect, edit, save, load, and turn
it into the motion of a video (paper Sec. 4.1 and 4.2)."""

from __future__ import annotations

import os

import folder_paths

from ..gid_models import pipeline
from ..gid_models.flow import FLOW_METHODS, source_frames_needed, window_frames
from ..gid_models.motion import MotionTexture
from ..gid_models.normalization import NormalizationStats, denormalize, normalize
from ..gid_models.pipeline import flow_size
from ..gid_models.spectral import SpectralVolume, load_spectral_volume, save_spectral_volume
from ..gid_models.visualize import band_amplitude_grid, motion_colors
from . import types
from .comfy_io import (
    Progress,
    check_filename_prefix,
    confined_path,
    file_digest,
    image_to_tensor,
    mask_to_tensor,
    require_memory,
    require_positive,
    tensor_to_image,
)
from .folders import GID_MODELS, gid_model_dirs, spectral_volume_files, statistics_files
from .model_nodes import unwrap_motion_model

# Bytes per frame and band while SpectrumToMotion computes the band weights of every frame: the
# phases (float64), their complex128 phasors and the complex64 copy kept (32, measured by
# tests/integration/test_memory.py), and a little for the allocator.
MOTION_BYTES_PER_WEIGHT = 36


def motion_memory(frames: int, bands: int, mask_pixels: int) -> int:
    """Peak bytes SpectrumToMotion allocates: the weights of ``frames`` x ``bands`` and, with a
    mask of ``mask_pixels`` values (its batch times its own pixels), its float32 copy (the motion itself is evaluated later, a
    chunk at a time, by the renderer)."""
    return frames * bands * MOTION_BYTES_PER_WEIGHT + mask_pixels * 4


def video_memory(
    frames: int,
    height: int,
    width: int,
    fps: float,
    target_fps: float,
    window: int,
    bands: int,
    flow_max_side: int | None,
) -> int:
    """Peak bytes VideoToSpectralVolume allocates for ``frames`` video frames of ``height`` x
    ``width``, the largest of its phases:

    - the frames as a float32 tensor (kept throughout), and the frames the window needs resized
      to the flow's size (with the intermediate of the separable resize);
    - the flow: displacements of every tracked frame at the flow's size, held three times while
      they are stacked into a motion texture, and resampled to ``target_fps`` (with three
      temporaries of that size);
    - the spectral volume, at the flow's size (it stays there: the renderer resizes its motion).
    """
    tensor = frames * height * width * 3 * 4
    flow_height, flow_width = flow_size(height, width, flow_max_side)
    flow_pixels = flow_height * flow_width
    tracked = min(frames, source_frames_needed(window, fps, target_fps))
    # Antialiased resizing is separable: the frames at (height, flow_width), then the result.
    resized = tracked * 3 * (height * flow_width + flow_pixels) * 4 if flow_pixels != height * width else 0
    flows = tracked * flow_pixels * 2 * 4
    resampled = window_frames(tracked, fps, target_fps, window) * flow_pixels * 2 * 4
    volume = bands * 2 * flow_pixels * 8
    phases = (
        resized + 3 * flows,
        # Linear resampling in time holds the two neighbouring frames and their weighted sum.
        resized + flows + 4 * resampled,
        resampled + volume,
    )
    return tensor + max(phases)


def require_volume(volume, name: str = "spectral_volume") -> SpectralVolume:
    if not isinstance(volume, SpectralVolume):
        raise ValueError(f"{name} must be a {types.SPECTRAL_VOLUME}, got {type(volume).__name__}")
    return volume


class SpectrumToMotion:
    DESCRIPTION = (
        "Turns a spectral volume into the motion of a video: the displacement of every pixel at "
        "every frame (paper Sec. 4.1, inverse FFT at any time). With the defaults, 150 frames at "
        "30 fps make one seamless loop. Slow motion, magnification and a start time are free; "
        "an optional MASK of any size (one painted on the loaded photo fits) limits the motion to "
        "a region. Its fps output carries the frame rate on to Softmax Splat Render."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.MOTION, "FLOAT")
    RETURN_NAMES = ("motion", "fps")
    OUTPUT_TOOLTIPS = ("The motion of every frame.", "The playback frame rate, as given.")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "spectral_volume": (
                    types.SPECTRAL_VOLUME,
                    {"tooltip": "Spectral volume in pixels (denormalized)."},
                ),
                "frames": (
                    "INT",
                    {
                        "default": 150,
                        "min": 1,
                        "max": 100000,
                        "tooltip": "Number of video frames to make. The window of the volume (150) gives exactly one loop.",
                    },
                ),
                "fps": (
                    "FLOAT",
                    {
                        "default": 30.0,
                        "min": 0.1,
                        "max": 240.0,
                        "step": 0.1,
                        "tooltip": "Playback frame rate of the video. Frame n shows the scene at start_time + n / (fps * time_scale) seconds. Connect Video to Spectral Volume's fps to play a measured video at its own pace.",
                    },
                ),
                "time_scale": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.01,
                        "max": 100.0,
                        "step": 0.01,
                        "tooltip": "Slow-motion factor: 2 plays the motion twice as slowly, 0.5 twice as fast.",
                    },
                ),
                "amplitude": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.05,
                        "tooltip": "Multiplies the motion: above 1 magnifies it, below 1 calms it, 0 freezes it.",
                    },
                ),
                "start_time": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -1000.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Scene time of the first frame, in seconds.",
                    },
                ),
            },
            "optional": {
                "mask": (
                    "MASK",
                    {
                        "tooltip": "Scales the motion per pixel (1 = as predicted, 0 = still). Any size: it covers the whole picture and is resized with the motion to the picture being rendered, so a mask painted on the loaded photo (LoadImage's MASK) fits, whatever the spectral volume's resolution."
                    },
                ),
            },
        }

    def run(self, spectral_volume, frames, fps, time_scale, amplitude, start_time, mask=None):
        volume = require_volume(spectral_volume)
        motion_mask = None if mask is None else mask_to_tensor(mask, volume.batch_size).to(volume.device)
        require_memory(
            motion_memory(frames, volume.num_bands, 0 if motion_mask is None else motion_mask.numel()),
            f"the motion of {frames} frames of {volume.num_bands} bands",
            "make fewer frames and render the video in parts (start_time)",
        )
        motion = MotionTexture.from_spectral_volume(
            volume,
            num_frames=frames,
            fps=fps,
            time_scale=time_scale,
            amplitude=amplitude,
            start_time=start_time,
            mask=motion_mask,
        )
        return (motion, fps)


class VideoToSpectralVolume:
    DESCRIPTION = (
        "Measures the motion of a real video and turns it into a spectral volume, no model "
        "needed (paper Sec. 4.1 and 7): optical flow from the first frame to every later frame "
        "gives each pixel's trajectory, resampled to the model frame rate; their FFT keeps the "
        "lowest frequency bands. Connect core Load Video's VIDEO: only the frames the window "
        "needs are decoded, already shrunk to the flow's size, so a long 1080p clip costs no more "
        "memory than a short one. Or connect an IMAGE batch of frames and its fps from other "
        "nodes. Outputs the volume, its frame rate for Spectrum to Motion, and the start frame to "
        "animate, at the video's size."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.SPECTRAL_VOLUME, "FLOAT", "IMAGE")
    RETURN_NAMES = ("spectral_volume", "fps", "start_frame")
    OUTPUT_TOOLTIPS = (
        "The measured spectral volume, in pixels, at the flow's size (the video's aspect, at most flow_max_side): it animates the video's frames at their own size.",
        "Its frame rate (target_fps): connect it to Spectrum to Motion's fps.",
        "The video's first frame (the start of the window) at its own size: the picture to animate.",
    )
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "num_bands": (
                    "INT",
                    {
                        "default": 16,
                        "min": 1,
                        "max": 76,
                        "tooltip": "K, frequency bands kept (16 in the paper).",
                    },
                ),
                "target_fps": (
                    "FLOAT",
                    {
                        "default": 30.0,
                        "min": 1.0,
                        "max": 240.0,
                        "tooltip": "Frame rate the trajectories are resampled to (30 in the paper).",
                    },
                ),
                "window": (
                    "INT",
                    {
                        "default": 150,
                        "min": 2,
                        "max": 10000,
                        "tooltip": "Frames of the FFT window at target_fps (150 = 5 s in the paper); shorter videos give a shorter window.",
                    },
                ),
                "flow_method": (
                    sorted(FLOW_METHODS),
                    {
                        "default": "dis",
                        "tooltip": "Optical-flow method; dis is the measured best (see gid_models/flow.py).",
                    },
                ),
                "flow_max_side": (
                    "INT",
                    {
                        "default": 512,
                        "min": 0,
                        "max": 8192,
                        "tooltip": "Longest side, in pixels, at which the flow runs (0 = full size). The volume keeps this size; the renderer resizes the motion to the picture.",
                    },
                ),
            },
            "optional": {
                "video": (
                    "VIDEO",
                    {
                        "tooltip": "A video from core Load Video; its frame rate is read from the file. Only the window's frames are decoded. Connect this or frames, not both."
                    },
                ),
                "frames": (
                    "IMAGE",
                    {
                        "tooltip": "Or the video's frames as an IMAGE batch (the first frame is the start frame), with their fps."
                    },
                ),
                "fps": (
                    "FLOAT",
                    {
                        "forceInput": True,
                        "tooltip": "Frame rate of the frames batch (GetVideoComponents gives it); not needed with video.",
                    },
                ),
            },
        }

    def run(
        self, num_bands, target_fps, window, flow_method, flow_max_side, video=None, frames=None, fps=None
    ):
        settings = {
            "num_bands": num_bands,
            "target_fps": target_fps,
            "window": window,
            "method": flow_method,
            "flow_max_side": flow_max_side or None,
        }
        if (video is None) == (frames is None):
            raise ValueError(
                "connect either a video (core Load Video) or an IMAGE batch of frames with its fps, "
                f"not {'both' if video is not None else 'neither'}"
            )
        path = _video_path(video) if video is not None else None
        if path is not None:
            volume, start = pipeline.from_video_file(path, **settings, progress=Progress(1))
            return (volume, volume.fps, tensor_to_image(start))
        if video is not None:
            # A video made in the graph (Create Video) or held in memory: its frames exist already.
            components = video.get_components()
            frames, fps = components.images, float(components.frame_rate)
        pixels = image_to_tensor(frames, "frames")
        if fps is None:
            raise ValueError("frames needs its fps: connect the fps output of GetVideoComponents")
        fps = require_positive(
            fps, "fps", "connect the fps output of GetVideoComponents, or type the video's frame rate"
        )
        if pixels.shape[0] < 2:
            raise ValueError(
                f"frames holds {pixels.shape[0]} image, but a video is needed (a batch of frames); "
                "load one with LoadVideo and GetVideoComponents"
            )
        count, height, width = pixels.shape[0], *pixels.shape[-2:]
        require_memory(
            video_memory(count, height, width, fps, target_fps, window, num_bands, flow_max_side or None),
            f"the optical flow and spectral volume of {count} frames of {width}x{height}",
            "lower flow_max_side, window or target_fps, or scale the frames down (ImageScale)",
        )
        volume = pipeline.from_video(pixels, fps, **settings, progress=Progress(pixels.shape[0]))
        return (volume, volume.fps, tensor_to_image(pixels[:1]))


def _video_path(video) -> str | None:
    """The file behind a ComfyUI VIDEO, when it is one on disk (core Load Video's), else None."""
    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    return source if isinstance(source, str) else None


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
                "spectral_volume": (
                    types.SPECTRAL_VOLUME,
                    {"tooltip": "Spectral volume in pixels (denormalized)."},
                ),
                "columns": (
                    "INT",
                    {
                        "default": 4,
                        "min": 1,
                        "max": 32,
                        "tooltip": "Band tiles per row of the amplitude grid.",
                    },
                ),
            }
        }

    def run(self, spectral_volume, columns):
        volume = require_volume(spectral_volume)
        return (tensor_to_image(band_amplitude_grid(volume, columns)), tensor_to_image(motion_colors(volume)))


class FrequencyNormalize:
    DESCRIPTION = (
        "Frequency-adaptive normalization of a spectral volume (paper Sec. 4.2, Eq. 4): each band "
        "is divided by its 95th-percentile magnitude s_f and square-rooted, S' = sign(S) "
        "sqrt(|S| / s_f), as the motion model sees it; 'denormalize' returns to pixels. The "
        "statistics come from a motion model or from a statistics file in models/gid."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.SPECTRAL_VOLUME,)
    RETURN_NAMES = ("spectral_volume",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "spectral_volume": (types.SPECTRAL_VOLUME, {"tooltip": "The spectral volume to transform."}),
                "direction": (
                    ["normalize", "denormalize"],
                    {"tooltip": "normalize: pixels -> model units; denormalize: model units -> pixels."},
                ),
                "statistics_file": (
                    ["none"] + statistics_files(),
                    {
                        "tooltip": "Normalization statistics (.json or .safetensors) in models/gid; used when no motion model is connected."
                    },
                ),
            },
            "optional": {
                "motion_model": (
                    types.MOTION_MODEL,
                    {"tooltip": "A loaded motion model; its normalization statistics are used."},
                ),
            },
        }

    @classmethod
    def IS_CHANGED(cls, statistics_file="none", **_):
        # A statistics file edited in place changes the output: its bytes are compared. (ComfyUI
        # passes only the widgets' values here, not the linked inputs.)
        if statistics_file == "none":
            return ""
        try:
            return file_digest(cls._statistics_path(statistics_file))
        except (OSError, ValueError):
            return ""

    def run(self, spectral_volume, direction, statistics_file, motion_model=None):
        volume = require_volume(spectral_volume)
        if motion_model is not None:
            stats = unwrap_motion_model(motion_model).normalization
        elif statistics_file != "none":
            stats = NormalizationStats.load(self._statistics_path(statistics_file))
        else:
            raise ValueError(
                "connect a motion_model or choose a statistics_file: normalization needs the per-band scales"
            )
        transform = normalize if direction == "normalize" else denormalize
        return (transform(volume, stats),)

    @staticmethod
    def _statistics_path(statistics_file: str) -> str:
        path = folder_paths.get_full_path(GID_MODELS, statistics_file)
        if path is None:
            raise ValueError(
                f"the statistics file {statistics_file!r} is not in models/gid any more; refresh the list"
            )
        return confined_path(path, gid_model_dirs(), "statistics file")


class SaveSpectralVolume:
    DESCRIPTION = (
        "Saves a spectral volume to ComfyUI's output folder as .safetensors, with K, fps, window "
        "and resolution in its metadata, so it can be shared and rendered later with "
        "LoadSpectralVolume."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "spectral_volume": (types.SPECTRAL_VOLUME, {"tooltip": "The spectral volume to save."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "gid/spectral_volume",
                        "tooltip": "File name prefix inside the output folder; a counter is appended.",
                    },
                ),
            }
        }

    def run(self, spectral_volume, filename_prefix):
        volume = require_volume(spectral_volume)
        output_dir = folder_paths.get_output_directory()
        check_filename_prefix(filename_prefix, output_dir)
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output_dir)
        os.makedirs(folder, exist_ok=True)
        filename = f"{name}_{counter:05}.safetensors"
        save_spectral_volume(volume, os.path.join(folder, filename))
        return {
            "ui": {"spectral_volumes": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}
        }


class LoadSpectralVolume:
    DESCRIPTION = (
        "Loads a spectral volume saved by SaveSpectralVolume (.safetensors files of ComfyUI's "
        "input folder, and of the output folder marked [output])."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.SPECTRAL_VOLUME,)
    RETURN_NAMES = ("spectral_volume",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": (
                    spectral_volume_files(),
                    {
                        "tooltip": "A .safetensors spectral volume in the input folder or, marked [output], the output folder."
                    },
                ),
            }
        }

    @classmethod
    def IS_CHANGED(cls, file):
        # The file's bytes, not its modification time, decide whether the volume changed. A
        # file that is missing or outside the folders is not read here: the run says why.
        try:
            return file_digest(cls._path(file))
        except (OSError, ValueError):
            return ""

    def run(self, file):
        return (load_spectral_volume(self._path(file)),)

    @staticmethod
    def _path(file: str) -> str:
        return confined_path(
            folder_paths.get_annotated_filepath(file),
            [folder_paths.get_input_directory(), folder_paths.get_output_directory()],
            "spectral volume file",
        )


NODE_CLASS_MAPPINGS = {
    "SpectrumToMotion": SpectrumToMotion,
    "VideoToSpectralVolume": VideoToSpectralVolume,
    "PreviewSpectralVolume": PreviewSpectralVolume,
    "FrequencyNormalize": FrequencyNormalize,
    "SaveSpectralVolume": SaveSpectralVolume,
    "LoadSpectralVolume": LoadSpectralVolume,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SpectrumToMotion": "Spectrum to Motion (GID)",
    "VideoToSpectralVolume": "Video to Spectral Volume (GID)",
    "PreviewSpectralVolume": "Preview Spectral Volume (GID)",
    "FrequencyNormalize": "Frequency Normalize (GID)",
    "SaveSpectralVolume": "Save Spectral Volume (GID)",
    "LoadSpectralVolume": "Load Spectral Volume (GID)",
}
