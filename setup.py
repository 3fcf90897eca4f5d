"""Packaging hook (the metadata is in pyproject.toml): a built wheel carries the shipped configs,
tokenizer, data and base checkpoint as minitune/shipped/, where minitune/run/paths.py finds them
from any folder. An editable install (`pip install -e .`) reads them from the project folder
instead."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("configs", "data", "tokenizer", "checkpoints")


class BuildWithShippedFiles(build_py):
    """build_py, then a copy of the shipped folders into the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "minitune" / "shipped"
        for name in SHIPPED:
            if (root / name).is_dir():
                shutil.copytree(root / name, target / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithShippedFiles})
