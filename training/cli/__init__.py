"""Console commands: depth-ros-train, -export, -evaluate, -compare and -render.

Each parses its arguments before importing the training side, so ``--help`` works without the
training extra; without it a command exits with one line saying what to install."""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

TRAIN_EXTRA = ('torch', 'onnx', 'onnxscript', 'scipy', 'h5py')
INSTALL = "pip install -e '.[train]'"


def import_training(prog: str, module: str) -> ModuleType:
    """``importlib.import_module(module)``, or exit with one line naming the missing package of
    the training extra and how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = (e.name or '').split('.')[0]
        if missing not in TRAIN_EXTRA:
            raise
        sys.exit(f'{prog}: needs {missing}, part of the training extra: {INSTALL}')


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the first line of ``doc`` (a module docstring) and whose
    epilog is the rest (the examples)."""
    return argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0], epilog=doc.split('\n', 2)[2],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
