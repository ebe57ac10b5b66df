"""Generative Image Dynamics for ComfyUI.

ComfyUI imports this folder as a custom-node pack. The node classes live in ``nodes/``; the
library they call, usable without ComfyUI, is ``gid_models`` (and ``training`` for the recipe).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
