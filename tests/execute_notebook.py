"""Execute one notebook through a real Jupyter kernel (nbclient), as Jupyter would run it.

    python tests/execute_notebook.py KERNEL_NAME IN.ipynb OUT.ipynb

tests/test_notebooks.py runs this with the Python of a fresh virtual environment, whose kernel
KERNEL_NAME it installed. The kernel starts in IN's folder with this process's environment
(MINITUNE_QUICK=1 there). OUT gets the executed notebook, outputs included, even when a cell
fails; the exit status is 1 then, and the error (the cell and its traceback) is printed.
"""

import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(kernel: str, source: Path, target: Path) -> int:
    spec = KernelSpecManager().get_kernel_spec(kernel)
    if Path(spec.argv[0]).parent != Path(sys.executable).parent:  # the environment's own Python
        print(f"kernel {kernel} runs {spec.argv[0]}, not this environment's Python")
        return 1
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(source.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        print(error)
        return 1
    finally:
        nbformat.write(nb, target)
    print(f"{source.name}: executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
