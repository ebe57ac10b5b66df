"""Generative Image Dynamics for ComfyUI.

ComfyUI imports this folder as a custom-node pack. The node classes live in ``nodes/``; the
library they call, usable without ComfyUI, is ``gid_models`` (and ``training`` for the recipe).
"""

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    # pytest imports a checkout's root __init__.py as a loose module when the folder's name is
    # not a Python identifier (a clone named "my-pack"); relative imports cannot work then.
    # ComfyUI always imports the folder as a package. Tests load the pack via tests/conftest.py.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
