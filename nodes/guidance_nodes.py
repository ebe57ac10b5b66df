"""Guidance nodes: loop self-guidance for PredictSpectralVolume (paper Sec. 6, Eq. 5)."""

from __future__ import annotations

from ..gid_models import looping
from . import types


class LoopGuidance:
    DESCRIPTION = (
        "Guides PredictSpectralVolume towards motion that loops seamlessly (paper Eq. 5): at every "
        "denoising step, the gradient of L_g = |F_T - F_1| + w_v |dF_T - dF_1| (position and velocity "
        "of every pixel at the loop's last and first frame) is added to the noise estimate, and the "
        "step is re-noised and repeated (self-recurrence). Universal guidance's backward step "
        "(backward > 0) also moves the predicted motion towards the nearest motion that loops; the "
        "shipped workflows use it alone (weight 0, backward 1), which keeps the motion's spectrum. "
        "Each step costs 1 + self_recurrence denoiser passes plus as many guidance passes."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.GUIDANCE,)
    RETURN_NAMES = ("guidance",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "weight": (
                    "FLOAT",
                    {
                        "default": 200.0,
                        "min": 0.0,
                        # Five times the paper's 200: already at 200, Eq. 5 kept 3 of 16 bands of
                        # gid-default's motion (gid_models/looping.py); far above, it only takes
                        # motion away, which no weight should offer.
                        "max": 1000.0,
                        "step": 10.0,
                        "tooltip": "Guidance weight u of Eq. 5 (the paper: 200). 0 turns Eq. 5 off (with backward 0 too, no guidance at all).",
                    },
                ),
                "self_recurrence": (
                    "INT",
                    {
                        "default": 2,
                        "min": 0,
                        "max": 10,
                        "tooltip": "How often each step is re-noised and repeated (the paper: 2); each repeat costs one more denoiser pass.",
                    },
                ),
                "velocity_weight": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.1,
                        "tooltip": "Weight w_v of the velocity term (velocities in pixels per frame, positions in pixels).",
                    },
                ),
                "start_frame": (
                    "INT",
                    {
                        "default": 0,
                        "min": -10000,
                        "max": 10000,
                        "tooltip": "Frame F_1 of the window, 0 = the input frame; negative frames count from the window's end.",
                    },
                ),
                "end_frame": (
                    "INT",
                    {
                        "default": -1,
                        "min": -10000,
                        "max": 10000,
                        "tooltip": "Frame F_T; -1 = the last frame of the T-frame loop (T - 1). Frame T would be frame 0 again and is refused.",
                    },
                ),
            },
            "optional": {
                "direction": (
                    list(looping.DIRECTIONS),
                    {
                        "default": "decoder",
                        "tooltip": "How the gradient of L_g reaches the latent. decoder: the literal gradient through the VAE decoder "
                        "(may cancel a snap-back by pumping single bands). encoder: the gradient of the normalized spectral volume, "
                        "carried into the latent by the VAE encoder, which changes each band in proportion to how much it varies in "
                        "real motion. The two need different weights.",
                    },
                ),
                "backward": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "Universal guidance's backward step: at every denoising step the predicted motion is moved this "
                        "fraction of the way to the nearest motion that loops (closed form, measured in each frequency band's spread "
                        "in the training data). 0 = the paper's Eq. 5 alone; 1 with weight 0 = the backward step alone.",
                    },
                ),
            },
        }

    def run(
        self,
        weight,
        self_recurrence,
        velocity_weight,
        start_frame,
        end_frame,
        direction="decoder",
        backward=0.0,
    ):
        return (
            looping.LoopGuidance(
                weight, self_recurrence, velocity_weight, start_frame, end_frame, direction, backward
            ),
        )


NODE_CLASS_MAPPINGS = {"LoopGuidance": LoopGuidance}
NODE_DISPLAY_NAME_MAPPINGS = {"LoopGuidance": "Loop Guidance (GID)"}
