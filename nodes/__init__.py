"""The pack's ComfyUI nodes: thin adapters that check inputs, call ``gid_models`` and convert
outputs. One module per part of the paper; their mappings are merged here."""

from . import brush_nodes, dynamics_nodes, guidance_nodes, model_nodes, render_nodes, spectral_nodes
from .comfy_io import guard_inputs

_MODULES = (model_nodes, spectral_nodes, brush_nodes, render_nodes, dynamics_nodes, guidance_nodes)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in _MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
# Every node refuses NaN and infinite numbers by the input's name before it runs (one check).
for _node_class in NODE_CLASS_MAPPINGS.values():
    guard_inputs(_node_class)
