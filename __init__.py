"""Generative Image Dynamics for ComfyUI.

ComfyUI imports this folder as a custom-node pack: as a package named after the folder's path,
whatever the folder is called, with nothing of it on ``sys.path``. So the pack's modules reach one
another relatively only: the node classes in ``nodes/`` call the library, ``gid_models`` (usable
without ComfyUI), as ``..gid_models``. ``training`` (the recipe) runs from a checkout's root.
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
