"""The runnable examples in the library's docstrings (kornia's manner) give what they show.

Examples that need a file the tests do not have (a video) are marked ``# doctest: +SKIP``.
"""

import doctest
import importlib
import pkgutil

import pytest

import gid_models

MODULES = sorted(module.name for module in pkgutil.iter_modules(gid_models.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_every_library_module_run_as_shown(name):
    module = importlib.import_module(f"gid_models.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of the examples of gid_models.{name} failed (printed above)"


def test_the_main_modules_have_runnable_examples():
    finder = doctest.DocTestFinder()
    with_examples = {
        name
        for name in MODULES
        if any(test.examples for test in finder.find(importlib.import_module(f"gid_models.{name}")))
    }
    assert {"spectral", "renderer", "rendering", "weight_free", "brush", "hub", "normalization", "pretrained_encoder"} <= with_examples
