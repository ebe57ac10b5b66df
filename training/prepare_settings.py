"""The settings of training data preparation: everything that decides what a prepared folder holds.

``PrepareSettings`` is stored in the folder's ``settings.json`` (``to_dict``, read back with
``from_dict``); a rerun into the same folder must use the same settings. Evaluation cuts its
held-out clips with the same settings, so that its windows are made exactly as the training
data's. Units: pixels for sizes and motion thresholds, frames per second for rates, frames for
windows, strides and offsets.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from gid_models.configs import size_hw
from gid_models.flow import source_frames_needed

from .clips import window_starts
from .config import NON_NEGATIVE_INT, POSITIVE_INT, check_fields

__all__ = ["PrepareSettings"]


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that decides the content of the output (stored in ``settings.json``).

    Attributes:
        resolution: ``(height, width)`` of the training images and volumes, pixels (the
            command line's ``--size`` is WIDTHxHEIGHT, as users type it).
        fps: frame rate of the windows, frames per second (the model's; 30 in the paper).
        window: frames per window at ``fps`` (150 in the paper: 5 s).
        num_bands: K, bands kept per spectral volume (16 in the paper).
        stride: frames of the clip between consecutive start frames (10 in the paper).
        min_motion: windows whose motion score (``motion_score``) is below this, in pixels,
            are left out as still.
        max_median_motion: windows whose median displacement magnitude over all pixels and
            frames exceeds this, in pixels, are left out as camera motion; None keeps them.
        pairs_per_window: frame pairs (I0, I_t) drawn from each kept window.
        max_pair_offset: the largest t of a pair, in frames of the clip.
        motion_shard_size: windows per motion shard (about 10.5 MB each at 256x160, K = 16).
        pair_shard_size: pairs per pair shard (about 0.7 MB each at 256x160).
        flow_method: a preset of ``gid_models.flow.FLOW_METHODS``.
        min_fps: lowest plausible frame rate of a file, frames per second.
        max_fps: highest plausible frame rate of a file, frames per second.
        fallback_fps: the rate assumed when a file's rate is unknown or implausible; None skips
            such files.
        max_frames: frames read at most from the start of a clip (memory bound); None for all.
        min_window_seconds: when set, a clip shorter than one window but at least this long, in
            seconds, is kept instead of skipped: its windows hold what remains of the clip after
            their start (at least this long) and their trajectories are zero-padded to the
            window (``SpectralVolume.from_motion_texture(pad_shorter=True)``). None (the
            default, the paper's rule) skips every clip shorter than a window. The paper is
            silent on short clips; with a few dozen clips, the short ones are a tenth of the
            data (a tree, waves, a fountain, close-up flames in ``shared/data``).
        condition_scale: when above 1, every window also stores its start frame at this many
            times ``resolution`` (``condition_images``), decoded from the clip at that size: what a
            frozen pretrained image encoder looks at (``gid_models.pretrained_encoder``), which
            needs more pixels than the motion's resolution. 1 stores none.
    """

    resolution: tuple[int, int] = (160, 256)
    fps: float = 30.0
    window: int = 150
    num_bands: int = 16
    stride: int = 10
    min_motion: float = 0.5
    max_median_motion: float | None = None
    pairs_per_window: int = 4
    max_pair_offset: int = 30
    motion_shard_size: int = 64
    pair_shard_size: int = 256
    flow_method: str = "dis"
    min_fps: float = 5.0
    max_fps: float = 120.0
    fallback_fps: float | None = None
    max_frames: int | None = 3600
    condition_scale: int = 1
    min_window_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolution", size_hw(self.resolution, "resolution"))
        counts = ("window", "num_bands", "stride", "max_pair_offset", "motion_shard_size", "pair_shard_size")
        check_fields(
            self,
            {
                **dict.fromkeys((*counts, "condition_scale"), POSITIVE_INT),
                "pairs_per_window": NON_NEGATIVE_INT,
            },
        )
        if self.min_window_seconds is not None and not 0 < self.min_window_seconds <= self.window / self.fps:
            raise ValueError(
                f"min_window_seconds must be above 0 and at most a window ({self.window / self.fps:g} s), "
                f"got {self.min_window_seconds}"
            )
        if not 0 < self.min_fps < self.max_fps:
            raise ValueError(f"need 0 < min_fps < max_fps, got {self.min_fps} and {self.max_fps}")

    def window_spans(self, num_frames: int, fps: float) -> list[tuple[int, int]]:
        """The windows of a clip of ``num_frames`` frames at ``fps``: ``(start, frames)`` pairs.

        A clip at least one window long gives full windows every ``stride`` frames
        (``training.clips.window_starts``). A shorter clip gives, with ``min_window_seconds``,
        windows every ``stride`` frames holding the rest of the clip while that lasts at least
        ``min_window_seconds``; otherwise none. Frames are the clip's, at ``fps``.
        """
        needed = source_frames_needed(self.window, fps, self.fps)
        if num_frames >= needed or self.min_window_seconds is None:
            return [(start, needed) for start in window_starts(num_frames, needed, self.stride)]
        shortest = source_frames_needed(
            max(2, math.ceil(self.min_window_seconds * self.fps - 1e-9)), fps, self.fps
        )
        return [(start, num_frames - start) for start in window_starts(num_frames, shortest, self.stride)]

    def to_dict(self) -> dict:
        return {**asdict(self), "resolution": list(self.resolution)}

    @classmethod
    def from_dict(cls, data: dict) -> PrepareSettings:
        """The settings of a ``settings.json``. Folders prepared before the size was stored as
        ``resolution`` hold ``"size": [width, height]``, read here as that resolution, so that
        their data stays usable and a rerun into them is still recognised as the same settings."""
        known = {f.name for f in fields(cls)}
        settings = {key: value for key, value in data.items() if key in known}
        if "size" in data and "resolution" not in data:
            width, height = data["size"]
            settings["resolution"] = (height, width)
        return cls(**settings)
