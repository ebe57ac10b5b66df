"""Nodes and names that many integration-test graphs share, as API-format prompt entries."""

# A model folder of the server's models/gid with a renderer: gid-default plus a renderer of the
# default recipe's size (the ``model_with_renderer`` fixture of conftest.py writes it).
MODEL_WITH_RENDERER = "gid-default-with-renderer"


def spectrum_to_motion(
    spectral_volume: list, frames: int, start_time: float = 0.0, fps: float = 30.0
) -> dict:
    """A SpectrumToMotion node at natural speed and amplitude.

    Args:
        spectral_volume: the link ``[node id, output index]`` of a GID_SPECTRAL_VOLUME.
        frames: frames of the motion.
        start_time: seconds into the loop of the first frame.
        fps: frame rate of the video.
    """
    return {
        "class_type": "SpectrumToMotion",
        "inputs": {
            "spectral_volume": spectral_volume,
            "frames": frames,
            "fps": fps,
            "time_scale": 1.0,
            "amplitude": 1.0,
            "start_time": start_time,
        },
    }
