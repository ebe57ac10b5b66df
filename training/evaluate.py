r"""Evaluation on held-out clips: motion, rendering and video quality, printed as one table.

    python -m training.evaluate --clips DIR_OR_FILE... [--manifest MANIFEST.tsv]
        [--model FOLDER | none] [--renderer FOLDER | weight-free] [--json OUT] [options]

The held-out clips are cut into windows exactly as the training data is (``training.prepare``:
same resolution, frame-rate policy, flow and spectral volume), up to ``--windows-per-clip``
non-overlapping windows per clip, from its first frame on. Per window:

Motion. The prediction is the model's spectral volume for the window's first frame I0
(``--scheduler``, DDIM by default, ``--steps``, guidance ``--guidance``); with ``--model none`` it is the window's own volume, an
upper bound that checks the pipeline and gives the renderer and video rows their best case.
The truth is the window's volume from its optical flow.

- placement: Pearson r between the amplitude maps ``sum_{k>=1} |S_k(p)|`` of prediction and
  truth; the same for three predictors that look only at the image, the image-gradient
  energy, a centre prior and the brightness (``training.metrics``). Against two truths: the
  window's volume (chained trajectories, which drift in flat and dark areas) and the
  drift-free mean magnitude of the frame-to-frame flow (``step_motion_map``). Mean over the
  windows, and per clip with the mean over clips (each clip counts once).
- template score: mean r between the predicted maps of windows of different clips
  (``template_score``; near 1 = the same motion whatever the photo), beside the same score of
  the drift-free truths (how alike the real motion of those clips is).
- spectrum: ``|ln(predicted_k / true_k)|`` of the mean amplitude per band, averaged over bands
  1..K-1 (per band in the JSON); the same for the dataset mean, the mean spectrum of the
  windows of the *other* clips (leave one clip out, so that no window predicts itself).
- scale: predicted over true mean amplitude, 1 = the right amount of motion.
- speed: the same amount measured without chaining, the prediction's mean speed
  (``mean_speed``, pixels per second) over that of the frame-to-frame flow within the volume's
  bands (``in_band_motion``); beside it, the true volume's speed over the same, which says how
  far the two truths agree on the clip (1 = they do; above 1, the chained trajectories drift).
- in band: the share of the frame-to-frame motion's energy at the volume's frequencies
  (``in_band_motion``; a broadband flicker gives about 3 / (fps / 2)): a clip whose motion lies
  above the bands has a true volume, and so a scale, that misses most of it.
- seams: ``gid_models.looping.seam_metrics`` of the predicted and of the true volumes, and
  ``rendered_seam_ratio`` of one rendered loop of the prediction.

Rendering. For t = 1..``--offsets`` (10) frames of the clip, the real I_t against I0 rendered
along the real flow I0 -> I_t: by the given renderer, by the weight-free splat, by ``cv2.remap``
backward warping with the inverted flow (``training.metrics.invert_flow``: fixed-point
iteration ``G(q) = -F(q + G(q))``), and I0 itself (no motion); PSNR and SSIM. The splatting
metric W is that of the window's true volume, as in the training pairs.

Video. The generated video is I0 animated by the renderer with the predicted volume, at the
clip's own frame rate over the window, so that it shows the same instants as the real frames;
"Repeat I0" is I0 repeated (the paper's baseline). Both against the real frames, centre-cropped
to 256x128 as in the paper (``EvaluationSettings.crop``): FID and KID over all frames (the TF
Inception of FID), FVD over non-overlapping 16-frame clips (I3D Kinetics-400), both networks loaded from the
converted weights (``training.metrics_networks``). On a few held-out clips these rest on
hundreds of frames and tens of clips, not the paper's thousands: FID and FVD are biased upwards
at such counts and comparable only between rows of one run; the table gives the counts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from gid_models import pipeline
from gid_models.flow import source_frames_needed
from gid_models.ldm import MotionLDM
from gid_models.looping import rendered_seam_ratio, seam_metrics
from gid_models.motion import MotionTexture
from gid_models.renderer import ImageBasedRenderer
from gid_models.rendering import Renderer, splat_metric
from gid_models.sampling import SCHEDULERS
from gid_models.spectral import SpectralVolume
from gid_models.weight_free import WeightFreeRenderer

from .clip_reading import SkipSource, read_clip
from .clips import Source, clip_sources, window_starts
from .config import size_from_text
from .metrics import (
    amplitude_map,
    amplitude_spectrum,
    brightness_map,
    centre_prior_map,
    frame_to_frame_flow,
    frechet_distance,
    gradient_energy_map,
    in_band_motion,
    kernel_inception_distance,
    log_spectrum_distance,
    mean_speed,
    motion_scale_ratio,
    pearson,
    psnr,
    remap_warp,
    ssim,
    step_motion_map,
    template_score,
)
from .metrics_networks import default_weights_dir, fid_features, fvd_features, load_i3d, load_inception
from .prepare_settings import PrepareSettings
from .window_samples import window_motion

__all__ = ["EvaluationSettings", "Window", "evaluate", "format_table", "held_out_windows"]

# The model-free placement predictors of ``motion_metrics`` and their rows in the table.
BASELINE_LABELS = {
    "gradient energy": "image-gradient energy",
    "centre prior": "centre prior",
    "brightness": "brightness (grey level)",
}


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything an evaluation run depends on besides the clips, the model and the renderer.

    Attributes:
        data: resolution, window, bands, flow and frame-rate policy, as for the training data
            (a model's own K, fps and window replace these; its predictions are resized to
            this resolution).
        windows_per_clip: non-overlapping windows taken from each clip, from its start.
        render_offsets: the renderer is scored on t = 1 .. this, in frames of the clip.
        crop: ``(height, width)`` of the centre crop that FID, KID and FVD see, pixels (256x128,
            width x height, in the paper).
        fvd_frames: frames per FVD clip (16: the paper's FVD; 32 for its FVD_32).
        steps: denoising steps of the model (250 with DDIM in the paper).
        scheduler: a name of ``gid_models.sampling.SCHEDULERS`` ("ddim" in the paper; the
            shipped workflows use "dpmpp_2m" with 25 steps).
        guidance_scale: classifier-free guidance weight w (1.75 in the paper).
        seed: seed of the model's noise and of KID's subsets.
        kid_subsets: subsets KID averages over.
        video_metrics: compute FID, KID and FVD (needs the converted weights).
    """

    data: PrepareSettings = field(default_factory=PrepareSettings)
    windows_per_clip: int = 2
    render_offsets: int = 10
    crop: tuple[int, int] = (128, 256)
    fvd_frames: int = 16
    steps: int = 250
    scheduler: str = "ddim"
    guidance_scale: float = 1.75
    seed: int = 0
    kid_subsets: int = 100
    video_metrics: bool = True


@dataclass
class Window:
    """One held-out window.

    Attributes:
        clip: the clip's name.
        start: its first frame, in frames of the clip.
        fps: the clip's frame rate.
        frames: ``[n, 3, H, W]`` uint8 RGB, the real frames of the window at the clip's rate.
        flows: ``[render_offsets, 2, H, W]`` the real flow from frame 0 to frames 1, 2, ...
        truth: the window's spectral volume ``[1, K, 2, H, W]`` in pixels.
        step_motion: ``[H, W]`` the mean magnitude of the frame-to-frame flow over the window,
            pixels per frame of the clip: the drift-free placement truth.
        in_band_share: the share of the frame-to-frame motion's energy within the volume's
            bands (``in_band_motion``), in [0, 1].
        in_band_speed: the mean speed of the frame-to-frame motion within the volume's bands
            (``in_band_motion``), pixels per second: the drift-free truth of the amount.
        prediction: the volume predicted for ``frames[0]``, same layout.
    """

    clip: str
    start: int
    fps: float
    frames: torch.Tensor
    flows: torch.Tensor
    truth: SpectralVolume
    step_motion: torch.Tensor
    in_band_share: float
    in_band_speed: float
    prediction: SpectralVolume | None = None

    @property
    def image(self) -> torch.Tensor:
        """``[1, 3, H, W]`` float I0 in [0, 1]."""
        return self.frames[:1].float() / 255


def held_out_windows(
    sources: Sequence[Source], settings: EvaluationSettings, log=print
) -> tuple[list[Window], list[dict]]:
    """Cut the clips into windows as ``training.prepare`` does and compute their true motion.

    Returns:
        ``(windows, skipped)``: the windows, and ``{"file", "reason"}`` for clips without any.
    """
    data = settings.data
    windows, skipped = [], []
    for source in sources:
        try:
            frames, fps, _ = read_clip(source, data)
        except SkipSource as reason:
            skipped.append({"file": source.name, "reason": str(reason)})
            log(f"skip  {source.name}: {reason}")
            continue
        needed = source_frames_needed(data.window, fps, data.fps)
        starts = window_starts(len(frames), needed, needed, settings.windows_per_clip)
        for start in starts:
            clip_motion, _, truth = window_motion(frames[start:], fps, data)
            flows = clip_motion[0, 1 : settings.render_offsets + 1].clone()
            window_frames = frames[start : start + needed].clone()
            steps = frame_to_frame_flow(window_frames, data.flow_method)
            in_band = in_band_motion(steps, fps, float(truth.frequencies[-1]))
            windows.append(
                Window(
                    source.name,
                    start,
                    fps,
                    window_frames,
                    flows,
                    truth,
                    step_motion_map(steps),
                    in_band.share,
                    in_band.speed,
                )
            )
        log(f"held out  {source.name}: {len(starts)} window(s) of {needed} frames at {fps:g} fps")
    return windows, skipped


def predict(windows: list[Window], model: MotionLDM | None, settings: EvaluationSettings) -> None:
    """Set each window's prediction: the model's sample for I0, or the truth without a model."""
    for window in windows:
        if model is None:
            window.prediction = window.truth
            continue
        prediction = pipeline.predict(
            model,
            window.image,
            seed=settings.seed,
            steps=settings.steps,
            scheduler=settings.scheduler,
            guidance_scale=settings.guidance_scale,
        )
        # The motion metrics compare the prediction with the truth pixel by pixel on the frames'
        # grid, where the truth is measured (rendering alone would need no resize).
        window.prediction = prediction.resize(*window.frames.shape[-2:])


# ------------------------------------------------------------------------------------------------
# The three parts of the table


def motion_metrics(windows: list[Window]) -> dict:
    """Placement, template score, spectrum and scale of the predictions and baselines (module docstring)."""
    truth = [window.truth for window in windows]
    clips = [window.clip for window in windows]
    true_maps = torch.cat([amplitude_map(volume) for volume in truth])  # [N, H, W]
    step_maps = torch.stack([window.step_motion for window in windows]).to(true_maps)
    predicted_maps = torch.cat([amplitude_map(window.prediction) for window in windows])
    images = torch.cat([window.image for window in windows])
    predictors = {
        "prediction": predicted_maps,
        "gradient energy": gradient_energy_map(images),
        "centre prior": centre_prior_map(*true_maps.shape[-2:]).expand_as(true_maps),
        "brightness": brightness_map(images),
    }
    true_spectra = torch.cat([amplitude_spectrum(volume) for volume in truth])  # [N, K]
    predicted_spectra = torch.cat([amplitude_spectrum(window.prediction) for window in windows])
    mean_spectra = _other_clips_means(true_spectra, clips)
    prediction_distance = log_spectrum_distance(predicted_spectra, true_spectra)  # [N, K - 1]
    mean_distance = log_spectrum_distance(mean_spectra, true_spectra)
    scale = torch.cat([motion_scale_ratio(w.prediction, w.truth) for w in windows])
    true_speed = torch.tensor([w.in_band_speed for w in windows], dtype=torch.float64)
    true_speed = true_speed.where(true_speed > 0, math.nan)  # a clip without motion has no ratio
    in_band = torch.tensor([w.in_band_share for w in windows], dtype=torch.float64)
    speed = {
        "prediction": torch.cat([mean_speed(w.prediction) for w in windows]) / true_speed,
        "truth": torch.cat([mean_speed(w.truth) for w in windows]) / true_speed,
    }
    placement = {name: pearson(maps, true_maps) for name, maps in predictors.items()}
    drift_free = {name: pearson(maps, step_maps) for name, maps in predictors.items()}
    per_clip = {
        clip: {
            "placement": {name: _mean(r[_of(clips, clip)]) for name, r in placement.items()},
            "placement_drift_free": {name: _mean(r[_of(clips, clip)]) for name, r in drift_free.items()},
            "scale_ratio": _mean(scale[_of(clips, clip)]),
            "speed_ratio": {name: _mean(ratio[_of(clips, clip)]) for name, ratio in speed.items()},
            "in_band_share": _mean(in_band[_of(clips, clip)]),
        }
        for clip in dict.fromkeys(clips)
    }
    return {
        "windows": len(windows),
        "placement": {name: _mean(r) for name, r in placement.items()},
        "placement_drift_free": {name: _mean(r) for name, r in drift_free.items()},
        "placement_drift_free_clip_mean": {
            name: _mean(torch.tensor([entry["placement_drift_free"][name] for entry in per_clip.values()]))
            for name in predictors
        },
        "per_clip": per_clip,
        "template_score": {
            "prediction": template_score(predicted_maps, clips),
            "truth (drift-free)": template_score(step_maps, clips),
            "truth": template_score(true_maps, clips),
        },
        "spectrum_distance": {
            "prediction": _mean(prediction_distance),
            "dataset mean (other clips)": _mean(mean_distance),
        },
        "spectrum_distance_per_band": {
            "prediction": prediction_distance.mean(dim=0).tolist(),
            "dataset mean (other clips)": mean_distance.mean(dim=0).tolist(),
        },
        "scale_ratio": {"prediction": _mean(scale)},
        "speed_ratio": {name: _mean(ratio) for name, ratio in speed.items()},
        "true_mean_amplitude_px": _mean(torch.stack([v.amplitude()[:, 1:].mean() for v in truth])),
    }


def _of(clips: list[str], clip: str) -> torch.Tensor:
    """Boolean mask of the windows of one clip."""
    return torch.tensor([other == clip for other in clips])


def _other_clips_means(spectra: torch.Tensor, clips: list[str]) -> torch.Tensor:
    """For each window, the mean of the spectra ``[N, K]`` of the windows of the other clips.

    Returns:
        ``[N, K]``; nan when all windows come from one clip (there is no other to learn from).
    """
    means = []
    for clip in clips:
        others = [index for index, other in enumerate(clips) if other != clip]
        means.append(spectra[others].mean(dim=0) if others else torch.full_like(spectra[0], math.nan))
    return torch.stack(means)


@torch.no_grad()
def render_metrics(windows: list[Window], renderer: Renderer | None, renderer_name: str) -> dict:
    """PSNR and SSIM of I_t rendered from (I0, real flow) against the real I_t, per method."""
    methods = {} if renderer is None else {renderer_name: renderer}
    methods["weight-free splat"] = WeightFreeRenderer()
    scores: dict[str, dict[str, list[torch.Tensor]]] = {}
    for window in windows:
        image, flows = window.image, window.flows[None]  # [1, 3, H, W], [1, n, 2, H, W]
        targets = window.frames[1 : flows.shape[1] + 1].float() / 255
        metric = splat_metric(MotionTexture.from_spectral_volume(window.truth), *image.shape[-2:])
        rendered = {
            name: method.render_frames(method.prepare(image, metric), flows)[0]
            for name, method in methods.items()
        }
        rendered["cv2.remap, inverted flow"] = torch.stack([remap_warp(image[0], flow) for flow in flows[0]])
        rendered["Repeat I0 (no motion)"] = image.expand_as(targets)
        for name, frames in rendered.items():
            entry = scores.setdefault(name, {"psnr": [], "ssim": []})
            entry["psnr"].append(psnr(frames.clamp(0, 1), targets))
            entry["ssim"].append(ssim(frames.clamp(0, 1), targets))
    triples = sum(len(window.flows) for window in windows)
    return {
        "triples": triples,
        "offsets": [1, max(len(window.flows) for window in windows)],
        "methods": {
            name: {metric: _mean(torch.cat(values)) for metric, values in entry.items()}
            for name, entry in scores.items()
        },
    }


@torch.no_grad()
def seam_report(windows: list[Window], renderer: Renderer) -> dict:
    """Seam metrics (``gid_models.looping``) of the predicted and true volumes and of a rendered loop."""
    report = {}
    for name in ("prediction", "truth"):
        values = [seam_metrics(getattr(window, name)) for window in windows]
        report[name] = {key: float(np.mean([v[key] for v in values])) for key in values[0]}
    ratios = []
    for window in windows:
        frames = pipeline.loop(window.image, window.prediction, renderer)[0]  # one period, T frames
        ratios.append(rendered_seam_ratio(frames))
    report["rendered_seam_ratio"] = float(np.mean(ratios))
    return report


@torch.no_grad()
def video_metrics(
    windows: list[Window], renderer: Renderer, settings: EvaluationSettings, weights_dir: Path | None
) -> dict:
    """FID, KID and FVD of the generated videos and of "Repeat I0" against the real frames."""
    inception, i3d = load_inception(weights_dir), load_i3d(weights_dir)
    length = settings.fvd_frames
    features = {name: {"fid": [], "fvd": []} for name in ("real", "generated", "Repeat I0")}
    for window in windows:
        count = len(window.frames)
        motion = MotionTexture.from_spectral_volume(window.prediction, num_frames=count, fps=window.fps)
        videos = {
            "real": window.frames.float() / 255,
            "generated": pipeline.animate(window.image, motion, renderer)[0],
        }
        for name, video in videos.items():
            video = _centre_crop(video, settings.crop)
            features[name]["fid"].append(fid_features(inception, video))
            clips = video[: count // length * length].unflatten(0, (count // length, length))
            features[name]["fvd"].append(fvd_features(i3d, clips))
        # Every frame of "Repeat I0" is I0, every clip the same: one pass gives all their features.
        still = _centre_crop(window.image, settings.crop)
        features["Repeat I0"]["fid"].append(fid_features(inception, still).expand(count, -1))
        still_clip = fvd_features(i3d, still.expand(length, -1, -1, -1)[None])
        features["Repeat I0"]["fvd"].append(still_clip.expand(count // length, -1))
    pooled = {
        name: {kind: torch.cat(values) for kind, values in entry.items()} for name, entry in features.items()
    }
    real = pooled["real"]
    rows = {}
    for name in ("generated", "Repeat I0"):
        kid, kid_std = kernel_inception_distance(
            real["fid"], pooled[name]["fid"], subsets=settings.kid_subsets, seed=settings.seed
        )
        rows[name] = {
            "fid": frechet_distance(real["fid"], pooled[name]["fid"]),
            "kid": kid,
            "kid_std": kid_std,
            "fvd": frechet_distance(real["fvd"], pooled[name]["fvd"]) if len(real["fvd"]) > 1 else math.nan,
        }
    return {"frames": len(real["fid"]), "clips": len(real["fvd"]), "clip_frames": length, "rows": rows}


# ------------------------------------------------------------------------------------------------
# The whole run


def evaluate(
    sources: Sequence[Source],
    *,
    model: MotionLDM | None = None,
    renderer: Renderer | None = None,
    renderer_name: str = "weight-free",
    settings: EvaluationSettings | None = None,
    weights_dir: str | os.PathLike | None = None,
    log=print,
) -> dict:
    """Evaluate a model (or the clips' own motion) and a renderer on held-out clips.

    Args:
        sources: the held-out clips.
        model: the motion model, or None to use each window's true volume as the prediction.
        renderer: a trained renderer, or None for the weight-free splat.
        renderer_name: how the renderer is named in the table.
        settings: the defaults when None; with a model, its K, fps and window win (the frames
            keep ``settings.data.resolution``; predictions are resized to it).
        weights_dir: folder of the converted FID/FVD weights (``default_weights_dir``).
        log: called with progress lines.

    Returns:
        The results (what ``--json`` writes): settings, clips, and the sections ``motion``,
        ``seams``, ``rendering`` and ``video`` (None when ``settings.video_metrics`` is off).
    """
    settings = settings or EvaluationSettings()
    if model is not None:
        # The frames keep the evaluation size (the paper's 256x160 by default) whatever the
        # model's resolution: its prediction is resized to them, as nodes resize it to a photo.
        data = replace(
            settings.data,
            num_bands=model.config.num_bands,
            fps=model.config.fps,
            window=model.config.window,
        )
        settings = replace(settings, data=data)
    started = time.monotonic()
    windows, skipped = held_out_windows(sources, settings, log)
    if not windows:
        raise ValueError("no held-out clip holds a full window; nothing to evaluate")
    log(f"predicting {len(windows)} window(s) ({'model' if model is not None else 'true volumes'})")
    predict(windows, model, settings)
    animator = renderer if renderer is not None else WeightFreeRenderer()
    log("motion and seam metrics")
    results = {
        "clips": sorted({window.clip for window in windows}),
        "windows": [
            {"clip": w.clip, "start": w.start, "frames": len(w.frames), "fps": w.fps} for w in windows
        ],
        "skipped": skipped,
        "prediction": "model" if model is not None else "true volumes (upper bound)",
        "renderer": renderer_name,
        "settings": {**asdict(settings), "data": settings.data.to_dict()},
        "motion": motion_metrics(windows),
        "seams": seam_report(windows, animator),
    }
    log("rendering metrics")
    results["rendering"] = render_metrics(windows, renderer, renderer_name)
    if settings.video_metrics:
        log("video metrics (FID, KID, FVD)")
        results["video"] = video_metrics(
            windows, animator, settings, Path(weights_dir) if weights_dir else None
        )
    else:
        results["video"] = None
    results["seconds"] = time.monotonic() - started
    return results


def format_table(results: dict) -> str:
    """The results as one plain-text table."""
    motion, rendering, seams, video = (
        results["motion"],
        results["rendering"],
        results["seams"],
        results["video"],
    )
    lines = [
        f"Held-out clips: {', '.join(results['clips'])} ({motion['windows']} windows); "
        f"prediction: {results['prediction']}; renderer: {results['renderer']}"
    ]
    placement, spectrum = motion["placement"], motion["spectrum_distance"]
    drift_free, by_clip = motion["placement_drift_free"], motion["placement_drift_free_clip_mean"]
    template = motion["template_score"]
    lines += _section(
        f"Motion ({motion['windows']} windows; true mean amplitude {motion['true_mean_amplitude_px']:.2f} px)",
        [
            ("placement r", 12, 2),
            ("drift-free r", 13, 2),
            ("clip mean", 10, 2),
            ("template", 9, 2),
            ("|ln| spectrum", 15, 2),
            ("scale", 8, 2),
        ],
        {
            "prediction": (
                placement["prediction"],
                drift_free["prediction"],
                by_clip["prediction"],
                template["prediction"],
                spectrum["prediction"],
                motion["scale_ratio"]["prediction"],
            ),
            "truth (drift-free)": (None, None, None, template["truth (drift-free)"], None, None),
            "dataset mean (other clips)": (
                None,
                None,
                None,
                None,
                spectrum["dataset mean (other clips)"],
                None,
            ),
            **{
                label: (placement[name], drift_free[name], by_clip[name], None, None, None)
                for name, label in BASELINE_LABELS.items()
            },
        },
    )
    lines += _section(
        "Motion per clip (drift-free placement r; scale = predicted / true mean amplitude; "
        "speed = predicted / frame-to-frame flow speed in band, and the true volume's)",
        [
            ("prediction", 11, 2),
            ("gradient", 9, 2),
            ("centre", 8, 2),
            ("bright", 8, 2),
            ("scale", 8, 2),
            ("speed", 8, 2),
            ("truth speed", 12, 2),
            ("in band", 8, 2),
        ],
        {
            clip: (
                *(
                    entry["placement_drift_free"][name]
                    for name in ("prediction", "gradient energy", "centre prior", "brightness")
                ),
                entry["scale_ratio"],
                entry["speed_ratio"]["prediction"],
                entry["speed_ratio"]["truth"],
                entry["in_band_share"],
            )
            for clip, entry in motion["per_clip"].items()
        },
    )
    lines += _section(
        "Seams (gid_models.looping)",
        [("position px", 12, 2), ("velocity px/f", 15, 2), ("speed ratio", 13, 2)],
        {
            f"{name} volumes": (
                seams[name]["position_gap"],
                seams[name]["velocity_gap"],
                seams[name]["seam_speed_ratio"],
            )
            for name in ("prediction", "truth")
        },
    )
    lines.append(
        f"  rendered loop of the prediction: seam step / mean step = {seams['rendered_seam_ratio']:.2f}"
    )
    first, last = rendering["offsets"]
    lines += _section(
        f"Rendering ({rendering['triples']} triples (I0, I_t, flow), t = {first}..{last})",
        [("PSNR dB", 10, 2), ("SSIM", 8, 3)],
        {name: (entry["psnr"], entry["ssim"]) for name, entry in rendering["methods"].items()},
    )
    if video is not None:
        lines += _section(
            f"Video ({video['frames']} frames, {video['clips']} clips of {video['clip_frames']} frames per set)",
            [("FID", 9, 2), ("KID x100", 10, 2), ("FVD", 9, 1)],
            {name: (entry["fid"], 100 * entry["kid"], entry["fvd"]) for name, entry in video["rows"].items()},
        )
    return "\n".join(lines)


def _section(title: str, columns: list[tuple[str, int, int]], rows: dict[str, tuple]) -> list[str]:
    """A block of the table: its title, the column names, and one line of numbers per row.

    ``columns`` holds ``(name, width, digits)``; a value None or nan prints as ``-``.
    """
    lines = ["", title, f"  {'':34}" + "".join(f"{name:>{width}}" for name, width, _ in columns)]
    for label, values in rows.items():
        cells = (
            _cell(value, width, digits) for value, (_, width, digits) in zip(values, columns, strict=True)
        )
        lines.append(f"  {label:34}" + "".join(cells))
    return lines


def _cell(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}.{digits}f}"


def _mean(values: torch.Tensor) -> float:
    """Mean over the finite values (PSNR of identical images is infinite)."""
    values = values.double().flatten()
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


def _centre_crop(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centre ``size = (height, width)`` of ``[N, C, H, W]`` frames."""
    height, width = size
    top, left = (frames.shape[-2] - height) // 2, (frames.shape[-1] - width) // 2
    if top < 0 or left < 0:
        raise ValueError(
            f"frames of {frames.shape[-1]}x{frames.shape[-2]} are smaller than the crop {width}x{height}"
        )
    return frames[..., top : top + height, left : left + width]


# ------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    defaults = EvaluationSettings()
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Evaluate motion, rendering and video quality on held-out clips.",
    )
    parser.add_argument("--clips", nargs="+", required=True, help="held-out clips: folders and/or files")
    parser.add_argument("--manifest", help="MANIFEST.tsv giving the true frame rates of the clips")
    parser.add_argument(
        "--model", default="none", help="motion model folder, or 'none' to use the clips' own motion"
    )
    parser.add_argument("--renderer", default="weight-free", help="renderer folder, or 'weight-free'")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument(
        "--weights-dir",
        help="converted FID/FVD weights (default: $GID_EVAL_WEIGHTS or ~/.cache/gid/eval-weights)",
    )
    parser.add_argument(
        "--size",
        type=size_from_text,
        default=(160, 256),
        help="WIDTHxHEIGHT of the evaluation frames (256x160); predictions are resized to it",
    )
    parser.add_argument(
        "--windows-per-clip", type=int, default=defaults.windows_per_clip, help="windows per clip (2)"
    )
    parser.add_argument(
        "--offsets", type=int, default=defaults.render_offsets, help="renderer scored on t = 1..this (10)"
    )
    parser.add_argument(
        "--fvd-frames", type=int, default=defaults.fvd_frames, help="frames per FVD clip (16)"
    )
    parser.add_argument(
        "--steps", type=int, default=defaults.steps, help="denoising steps of the model (250)"
    )
    parser.add_argument(
        "--scheduler",
        default=defaults.scheduler,
        choices=sorted(SCHEDULERS),
        help="sampler (ddim, as the paper)",
    )
    parser.add_argument(
        "--guidance", type=float, default=defaults.guidance_scale, help="guidance weight w (1.75)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed (0)")
    parser.add_argument("--no-video-metrics", action="store_true", help="skip FID, KID and FVD")
    args = parser.parse_args(argv)

    settings = EvaluationSettings(
        data=PrepareSettings(resolution=args.size),
        windows_per_clip=args.windows_per_clip,
        render_offsets=args.offsets,
        fvd_frames=args.fvd_frames,
        steps=args.steps,
        scheduler=args.scheduler,
        guidance_scale=args.guidance,
        seed=args.seed,
        video_metrics=not args.no_video_metrics,
    )
    model = None if args.model.lower() == "none" else MotionLDM.from_pretrained(args.model)
    renderer = (
        None if args.renderer.lower() == "weight-free" else ImageBasedRenderer.from_pretrained(args.renderer)
    )
    results = evaluate(
        clip_sources(args.clips, args.manifest),
        model=model,
        renderer=renderer,
        renderer_name=args.renderer,
        settings=settings,
        weights_dir=args.weights_dir or default_weights_dir(),
        log=lambda line: print(line, file=sys.stderr),
    )
    print(format_table(results))
    print(f"({results['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
