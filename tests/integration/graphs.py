"""Nodes that many integration-test graphs share, as API-format prompt entries."""


def spectrum_to_motion(spectral_volume: list, frames: int, start_time: float = 0.0, fps: float = 30.0) -> dict:
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
