"""Fixtures of the training tests."""

import pytest
import torch

from training.config import CONFIG_FOLDER
from training.train import run


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tests: tiny models train fastest so (more threads only
    spin on a busy machine). Modules that train use it with ``pytest.mark.usefixtures``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vae_folder(toy_data, tmp_path_factory):
    """A tiny VAE trained for 2 steps on the module's ``toy_data``: the ``--init`` of denoiser stage 1."""
    output = tmp_path_factory.mktemp("runs") / "vae"
    config = str(CONFIG_FOLDER / "tiny-vae.json")
    run(
        [
            "vae",
            "--config",
            config,
            "--data",
            str(toy_data),
            "--output",
            str(output),
            "--set",
            "training.max_steps=2",
        ]
    )
    return output / "model"
