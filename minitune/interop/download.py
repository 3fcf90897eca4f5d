"""Download a published T5 / Flan-T5 checkpoint by plain HTTPS (no Hugging Face library).

    download("flan-t5-small", "models/flan-t5-small")  # config.json, weights, spiece.model
    download("google/flan-t5-small", "models/flan-t5-small")  # the same, by its hub name

The Hugging Face hub serves every file of a model repository at

    https://huggingface.co/<repo>/resolve/main/<file>

Large files are stored with Git LFS: the hub answers with a redirect to a download server and
publishes the file's size and sha256 in the redirect's `X-Linked-Size` and `X-Linked-ETag`
headers; small files come directly, with their size as `Content-Length`. Each file is written to
`<file>.part`, continued with an HTTP Range request after an interruption, checked against the
published size (and sha256 when published), and only then renamed to its name: a folder holds
complete, checked files or `.part` files, never a half-written model. The result is a folder that
`--checkpoint` and `--init` take (minitune/interop/t5.py reads it).
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

HUB = "https://huggingface.co"
# minitune's short names -> hub repositories (the T5 shapes minitune/interop/t5.py reads)
MODELS = {
    "flan-t5-small": "google/flan-t5-small",
    "flan-t5-base": "google/flan-t5-base",
    "t5-small": "google-t5/t5-small",
}
# the files of a T5 folder; for the weights, the first name the repository has
FILES = ["config.json", ["model.safetensors", "pytorch_model.bin"], "spiece.model"]
CHUNK = 1 << 20


class DownloadError(ValueError):
    """A download that cannot complete (unknown name, network, size or checksum); names the file."""


class _KeepRedirectHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects, remembering the headers of each redirect response (where the hub
    publishes an LFS file's size and sha256)."""

    def __init__(self):
        self.seen: list = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.seen.append(headers)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and req.get_header("Range"):
            new.add_unredirected_header("Range", req.get_header("Range"))
        return new


def _open(url: str, start: int = 0, method: str = "GET"):
    """(response, [redirect headers]) for url, from byte `start` on."""
    redirects = _KeepRedirectHeaders()
    opener = urllib.request.build_opener(redirects)
    request = urllib.request.Request(url, method=method, headers={"User-Agent": "minitune"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return opener.open(request, timeout=60), redirects.seen


def published(response, redirects: list) -> tuple[int | None, str | None]:
    """(size, sha256) as the hub publishes them: X-Linked-Size / X-Linked-ETag on an LFS
    redirect, else Content-Length (and no checksum: a small file's ETag is a git hash)."""
    for headers in [*redirects, response.headers]:
        size, etag = headers.get("X-Linked-Size"), headers.get("X-Linked-ETag")
        if size is not None:
            sha = (etag or "").strip('"').removeprefix("W/").strip('"').lower()
            return int(size), sha if re.fullmatch(r"[0-9a-f]{64}", sha) else None
    length = response.headers.get("Content-Length")
    if response.status == 206:  # Content-Range: bytes START-END/TOTAL
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        return (int(total) if total.isdigit() else None), None
    return (int(length) if length is not None else None), None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(url: str, target: Path, progress: bool = True) -> str:
    """Download url to target (continuing target.part); returns what happened, in words."""
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    reading = True
    try:
        response, redirects = _open(url, start)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not start:
            raise
        response, redirects = _open(url, method="HEAD")  # the .part is whole already
        reading = False
    with response:
        size, sha = published(response, redirects)
        if reading:
            if response.status != 206:  # the server sent the whole file: start over
                start = 0
            with (
                open(part, "ab" if start else "wb") as f,
                tqdm(
                    total=size,
                    initial=start,
                    unit="B",
                    unit_scale=True,
                    desc=target.name,
                    disable=not progress,
                ) as bar,
            ):
                while block := response.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
    got = part.stat().st_size
    if size is not None and got != size:
        if got > size:
            part.unlink()
        again = "; run the command again to continue" if got < size else ""
        raise DownloadError(f"{url}: got {got} bytes, the published size is {size}{again}")
    if sha is not None and _sha256(part) != sha:
        part.unlink()
        raise DownloadError(
            f"{url}: the sha256 of the download differs from the published "
            f"{sha}; the file was removed, run the command again"
        )
    part.replace(target)
    checked = "size and sha256" if sha else "size" if size is not None else "nothing published"
    return f"{target}: {got:,} bytes ({'continued, ' if start else ''}checked: {checked})"


def short_name(name: str) -> str:
    """minitune's name of a supported checkpoint, given that name or its hub repository's:
    "google/flan-t5-small" -> "flan-t5-small". Raises DownloadError for any other name."""
    if name in MODELS:
        return name
    by_repo = {repo: short for short, repo in MODELS.items()}
    if name in by_repo:
        return by_repo[name]
    known = ", ".join(f"{short} ({repo})" for short, repo in MODELS.items())
    raise DownloadError(f"unknown model {name!r}; known: {known}")


def download(name: str, out: str | Path, hub: str = HUB, progress: bool = True, log=print) -> Path:
    """Fetch a published checkpoint's config.json, weights and spiece.model into `out`; `name`
    is minitune's short name or the hub repository's ("flan-t5-small", "google/flan-t5-small")."""
    repo = MODELS[short_name(name)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"{hub.rstrip('/')}/{repo}/resolve/main"
    for choice in FILES:
        names = [choice] if isinstance(choice, str) else choice
        for i, file in enumerate(names):
            target = out / file
            if target.is_file() and not target.with_name(file + ".part").exists():
                log(f"{target}: already there")
                break
            try:
                log(fetch_file(f"{base}/{file}", target, progress))
                break
            except urllib.error.HTTPError as err:
                if err.code == 404 and i + 1 < len(names):
                    continue  # this repository keeps its weights under the next name
                raise DownloadError(f"{base}/{file}: HTTP {err.code} {err.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                raise DownloadError(
                    f"{base}/{file}: {reason} (run the command again to continue where it stopped)"
                ) from None
    return out
