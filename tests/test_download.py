"""`minitune download` against a local HTTP server that serves a tiny T5 folder the way the
Hugging Face hub does (LFS weights behind a redirect with their published size and sha256; Range
requests), since the test machines have no internet."""

import hashlib
import http.server
import threading
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from minitune import ModelConfig, Seq2SeqTransformer, export_t5, load_t5
from minitune.cli import main

ROOT = Path(__file__).resolve().parents[1]
REPO = "/google/flan-t5-small/resolve/main/"


class Hub(http.server.BaseHTTPRequestHandler):
    """Serves `files`; names in `lfs` redirect to /lfs/NAME with X-Linked-Size/-ETag headers."""

    files: ClassVar[dict[str, bytes]] = {}
    lfs: ClassVar[set[str]] = set()
    corrupt = False
    cut_after: int | None = None  # the next LFS body stops after this many bytes
    requests: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET(body=False)

    def do_GET(self, body=True):
        Hub.requests.append((self.path, self.headers.get("Range")))
        name = self.path.rpartition("/")[2]
        if self.path.startswith(REPO) and name in Hub.files and name in Hub.lfs:
            data = Hub.files[name]
            self.send_response(302)
            self.send_header("Location", f"/lfs/{name}")
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("X-Linked-ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not (self.path.startswith((REPO, "/lfs/")) and name in Hub.files):
            self.send_error(404)
            return
        data = Hub.files[name]
        if Hub.corrupt and name in Hub.lfs:
            data = data[:-1] + bytes([data[-1] ^ 1])
        start = (
            int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        )
        if start >= len(data) and start:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if body:
            chunk = data[start:]
            if Hub.cut_after is not None and name in Hub.lfs:
                chunk, Hub.cut_after = chunk[: Hub.cut_after], None
                self.wfile.write(chunk)
                self.close_connection = True
                return
            self.wfile.write(chunk)


@pytest.fixture
def hub(tmp_path):
    torch.manual_seed(0)
    model = Seq2SeqTransformer(
        ModelConfig.preset("tiny", vocab_size=3000, tie_embeddings=False, scale_attention=False)
    ).eval()
    export_t5(model, tmp_path / "published", tokenizer_file=ROOT / "tokenizer" / "minitune.model")
    (tmp_path / "published" / "spiece.segmentation.json").unlink()  # hubs have plain T5 folders
    Hub.files = {p.name: p.read_bytes() for p in (tmp_path / "published").iterdir()}
    Hub.lfs, Hub.corrupt, Hub.cut_after, Hub.requests = {"model.safetensors"}, False, None, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", model
    server.shutdown()


def download(url, out, *extra):
    return main(
        ["download", "flan-t5-small", "--out", str(out), "--hub", url, "--no-progress", *extra]
    )


def test_download_fetches_a_checked_folder_that_loads(hub, tmp_path, capsys):
    url, model = hub
    assert download(url, tmp_path / "flan") == 0
    printed = capsys.readouterr().out
    assert "model.safetensors" in printed and "checked: size and sha256" in printed
    for name, data in Hub.files.items():
        assert (tmp_path / "flan" / name).read_bytes() == data
    loaded, ours = load_t5(tmp_path / "flan").state_dict(), model.state_dict()
    assert loaded.keys() == ours.keys() and all(torch.equal(loaded[k], ours[k]) for k in ours)
    assert f"minitune generate --checkpoint {tmp_path / 'flan'}" in printed
    assert (
        main(
            [
                "generate",
                "--checkpoint",
                str(tmp_path / "flan"),
                "--max-new-tokens",
                "2",
                "What is 1 + 1?",
            ]
        )
        == 0
    )
    Hub.requests.clear()
    assert download(url, tmp_path / "flan") == 0  # complete files are not fetched again
    assert Hub.requests == [] and "already there" in capsys.readouterr().out


def test_an_interrupted_download_continues_with_a_range_request(hub, tmp_path, capsys):
    url, _ = hub
    Hub.cut_after = 5000
    assert download(url, tmp_path / "flan") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run the command again" in err
    part = tmp_path / "flan" / "model.safetensors.part"
    assert part.stat().st_size == 5000 and not (tmp_path / "flan" / "model.safetensors").exists()
    Hub.requests.clear()
    assert download(url, tmp_path / "flan") == 0
    assert ("/lfs/model.safetensors", "bytes=5000-") in Hub.requests
    assert "continued" in capsys.readouterr().out
    assert (tmp_path / "flan" / "model.safetensors").read_bytes() == Hub.files["model.safetensors"]


def test_a_checksum_mismatch_keeps_nothing(hub, tmp_path, capsys):
    url, _ = hub
    Hub.corrupt = True
    assert download(url, tmp_path / "flan") == 2
    err = capsys.readouterr().err
    assert "sha256 of the download differs from the published" in err and "Traceback" not in err
    assert not list((tmp_path / "flan").glob("model.safetensors*"))


def test_pytorch_bin_when_there_are_no_safetensors_and_unknown_names(hub, tmp_path, capsys):
    url, _ = hub
    Hub.files["pytorch_model.bin"] = Hub.files.pop("model.safetensors")  # bytes do not matter here
    Hub.lfs = {"pytorch_model.bin"}
    from minitune.interop.download import download as fetch

    fetch("flan-t5-small", tmp_path / "bin", hub=url, progress=False, log=lambda *a: None)
    assert (tmp_path / "bin" / "pytorch_model.bin").is_file()
    assert main(["download", "flan-t5-large"]) == 2  # one line, no traceback
    err = capsys.readouterr().err
    assert "unknown model 'flan-t5-large'" in err and "flan-t5-small (google/flan-t5-small)" in err
    assert "Traceback" not in err


def test_the_hubs_repository_name_is_accepted(hub, tmp_path, capsys, monkeypatch):
    """`minitune download google/flan-t5-small` fetches the same repository as flan-t5-small,
    into models/flan-t5-small by default."""
    url, _ = hub
    monkeypatch.chdir(tmp_path)
    assert main(["download", "google/flan-t5-small", "--hub", url, "--no-progress"]) == 0
    for name, data in Hub.files.items():
        assert (tmp_path / "models" / "flan-t5-small" / name).read_bytes() == data
    assert "runs/flan-t5-small-tuned" in capsys.readouterr().out
    from minitune.interop.download import DownloadError, short_name

    assert short_name("google-t5/t5-small") == "t5-small"
    with pytest.raises(DownloadError, match="google/flan-t5-large"):
        short_name("google/flan-t5-large")
