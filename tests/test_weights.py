"""Weights: safetensors round trip, registry, and the Hub path against a real local HTTP server.

The Hub tests run huggingface_hub for real (no mocks) against pytest-httpserver speaking the Hub's
file protocol: ``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` answered with ``X-Repo-Commit``,
``ETag`` (the file's sha256, as the Hub sends for LFS files) and ``Content-Length``; a missing file
gets 404 with ``X-Error-Code: EntryNotFound``. huggingface_hub reads ``HF_ENDPOINT``, ``HF_HOME``
and ``HF_HUB_OFFLINE`` at import time, so each resolution runs in a fresh subprocess with its own
environment (resolution imports no torch, so each takes well under a second).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from werkzeug import Request, Response

from deblurcli.errors import ModelError, UnknownModelError, WeightsNotAvailableError
from deblurcli.models import create_model
from deblurcli.registry import REGISTRY, HubFile, ModelEntry
from deblurcli.weights import load_model, parse_hf_spec, read_metadata, resolve_weights, save_model

SRC = Path(__file__).resolve().parents[1] / "src"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "someone/deblur-test"


# ------------------------------------------------------------------------- local files, registry


def test_registry_param_counts_match_the_models() -> None:
    for entry in REGISTRY.values():
        model = create_model(entry.architecture, **entry.hyperparameters)
        assert sum(p.numel() for p in model.parameters()) == entry.num_params, entry.name


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = create_model("deblurgan", ngf=4, n_blocks=1).eval()
    path = save_model(tmp_path / "sub" / "g.safetensors", model, metadata={"recipe": '{"lr": 1e-4}'})
    meta = read_metadata(path)
    assert meta["format"] == "deblurcli" and meta["architecture"] == "deblurgan"
    assert json.loads(meta["hyperparameters"])["ngf"] == 4 and meta["recipe"] == '{"lr": 1e-4}'
    assert "version" in meta
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    loaded, info = load_model(path)
    assert not loaded.training and info.source == "file" and info.architecture == "deblurgan"
    x = torch.rand(1, 3, 21, 17)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_metadata_cannot_override_the_architecture(tmp_path: Path) -> None:
    model = create_model("nafnet", width=4)
    path = save_model(tmp_path / "m.safetensors", model, metadata={"architecture": "deblurgan"})
    assert read_metadata(path)["architecture"] == "nafnet"


def test_local_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_weights(tmp_path / "missing.safetensors")
    pickle = tmp_path / "ckpt.pt"
    torch.save({"w": torch.zeros(1)}, pickle)
    with pytest.raises(ModelError, match="only .safetensors"):
        load_model(pickle)
    # A pickle renamed to .safetensors is refused by the safetensors parser, never unpickled.
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(pickle.read_bytes())
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        load_model(disguised)
    with pytest.raises(UnknownModelError, match="known: deblurgan"):
        load_model("no-such-model")


def test_registered_model_without_weights_says_so() -> None:
    with pytest.raises(WeightsNotAvailableError, match=r"no trained weights .* --model path/to/model.safetensors"):
        load_model("deblurgan", bundled_dir=Path("/nonexistent"))


def test_bundled_weights_are_found_and_verified(tmp_path: Path) -> None:
    model = create_model("nafnet", width=4)
    path = save_model(tmp_path / "tiny.safetensors", model)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    reg = {"tiny": ModelEntry("tiny", "nafnet", {"width": 4}, sha256=sha)}
    loaded, info = load_model("tiny", registry=reg, bundled_dir=tmp_path)
    assert info.source == "bundled" and info.sha256 == sha and info.name == "tiny"
    bad = {"tiny": ModelEntry("tiny", "nafnet", {"width": 4}, sha256="0" * 64)}
    with pytest.raises(ModelError, match="checksum mismatch"):
        load_model("tiny", registry=bad, bundled_dir=tmp_path)
    assert path.exists()  # files of the installation are never deleted


def test_hf_spec_parsing() -> None:
    hub = parse_hf_spec("hf://a/b/sub/m.safetensors@v1.0")
    assert (hub.repo_id, hub.filename, hub.revision) == ("a/b", "sub/m.safetensors", "v1.0")
    assert parse_hf_spec("hf://a/b/m.safetensors").revision == "main"
    with pytest.raises(ModelError, match="only .safetensors"):
        parse_hf_spec("hf://a/b/pytorch_model.bin@main")
    with pytest.raises(UnknownModelError, match="malformed"):
        parse_hf_spec("hf://just-a-name")


# ----------------------------------------------------------------------------- the Hub, for real


class FakeHub:
    """Files served under /{repo}/resolve/{revision}/{file}, as the Hub does (plain HTTP, no Xet)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}

    def add(self, filename: str, data: bytes, etag: str | None = None) -> str:
        self.files[filename] = data
        self.etags[filename] = etag or hashlib.sha256(data).hexdigest()
        return self.etags[filename]

    def __call__(self, request: Request) -> Response:
        prefix = f"/{REPO}/resolve/"
        if not request.path.startswith(prefix):
            return Response("not found", status=404, headers={"X-Error-Code": "RepoNotFound"})
        revision, _, filename = request.path[len(prefix) :].partition("/")
        if revision not in ("main", COMMIT):
            return Response("no revision", status=404, headers={"X-Error-Code": "RevisionNotFound"})
        if filename not in self.files:
            return Response(
                "no entry", status=404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}
            )
        data = self.files[filename]
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{self.etags[filename]}"',
            "Content-Length": str(len(data)),
            "Content-Type": "application/octet-stream",
        }
        body = b"" if request.method == "HEAD" else data
        resp = Response(body, status=200, headers=headers)
        resp.headers["Content-Length"] = str(len(data))  # HEAD keeps the real size
        return resp


@pytest.fixture
def hub(httpserver):  # type: ignore[no-untyped-def]
    import re

    fake = FakeHub()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake)
    fake.server = httpserver  # type: ignore[attr-defined]
    return fake


def _resolve(hub: FakeHub, home: Path, spec: str, entry: dict | None = None, offline: bool = False, load: bool = False) -> dict:
    """Resolve ``spec`` in a fresh process with HF_ENDPOINT/HF_HOME set; return what happened."""
    script = r"""
import json, sys
from pathlib import Path
from deblurcli.registry import HubFile, ModelEntry
from deblurcli.weights import resolve_weights, read_metadata
spec, entry, load = json.loads(sys.argv[1])
reg = None
if entry:
    reg = {entry["name"]: ModelEntry(entry["name"], "nafnet", {"width": 4}, sha256=entry["sha256"],
           hub=HubFile(entry["repo"], entry["filename"], entry["revision"]))}
try:
    r = resolve_weights(spec, registry=reg, bundled_dir=Path("/nonexistent"))
    if load:
        read_metadata(r.path)
    print(json.dumps({"source": r.source, "path": str(r.path), "sha256": r.sha256}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        PYTHONPATH=str(SRC),
        HF_ENDPOINT=hub.server.url_for("").rstrip("/"),  # type: ignore[attr-defined]
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps([spec, entry, load])],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _weights_bytes(tmp_path: Path) -> bytes:
    return save_model(tmp_path / "w.safetensors", create_model("nafnet", width=4)).read_bytes()


def _requests(hub: FakeHub) -> list[tuple[str, str]]:
    return [(req.method, req.path) for req, _ in hub.server.log]  # type: ignore[attr-defined]


def test_hub_download_cache_offline(hub: FakeHub, tmp_path: Path) -> None:
    data = _weights_bytes(tmp_path)
    sha = hub.add("tiny.safetensors", data)
    entry = {"name": "tiny", "sha256": sha, "repo": REPO, "filename": "tiny.safetensors", "revision": "main"}
    home = tmp_path / "hf"

    # Offline before anything is cached: a clear message saying what to fetch, and no request.
    r = _resolve(hub, home, "tiny", entry, offline=True)
    assert r["error"] == "WeightsNotAvailableError" and "not in the Hugging Face cache" in r["message"]
    assert f"hf download {REPO} tiny.safetensors --revision main" in r["message"]
    assert _requests(hub) == []

    r = _resolve(hub, home, "tiny", entry)
    assert r["source"] == "hub" and r["sha256"] == sha
    assert Path(r["path"]).read_bytes() == data and str(home) in r["path"]
    assert [m for m, _ in _requests(hub)] == ["HEAD", "GET"]

    hub.server.clear_log()  # type: ignore[attr-defined]
    r = _resolve(hub, home, "tiny", entry)
    assert r["source"] == "cache" and r["sha256"] == sha
    r = _resolve(hub, home, "tiny", entry, offline=True)
    assert r["source"] == "cache"
    assert _requests(hub) == []  # cached re-use makes no request at all


def test_hub_checksum_mismatch_removes_the_file(hub: FakeHub, tmp_path: Path) -> None:
    data = _weights_bytes(tmp_path)
    hub.add("tiny.safetensors", data)
    # The registry expects other bytes than the server sends (a tampered or replaced upload).
    entry = {"name": "tiny", "sha256": "ab" * 32, "repo": REPO, "filename": "tiny.safetensors", "revision": "main"}
    home = tmp_path / "hf"
    r = _resolve(hub, home, "tiny", entry)
    assert r["error"] == "ChecksumError" and "bad file was removed" in r["message"]
    assert not [p for p in home.rglob("*") if p.is_file() and p.stat().st_size == len(data)]
    r = _resolve(hub, home, "tiny", entry, offline=True)
    assert r["error"] == "WeightsNotAvailableError"  # nothing bad left behind in the cache


def test_hub_corrupted_cache_file_is_detected(hub: FakeHub, tmp_path: Path) -> None:
    data = _weights_bytes(tmp_path)
    sha = hub.add("tiny.safetensors", data)
    entry = {"name": "tiny", "sha256": sha, "repo": REPO, "filename": "tiny.safetensors", "revision": "main"}
    home = tmp_path / "hf"
    path = Path(_resolve(hub, home, "tiny", entry)["path"])
    blob = path.resolve()
    blob.write_bytes(data[:-10] + b"0123456789")  # bit rot / interrupted copy
    r = _resolve(hub, home, "tiny", entry)
    assert r["error"] == "ChecksumError"
    assert not blob.exists() and not path.exists()
    r = _resolve(hub, home, "tiny", entry)  # and the next run downloads it afresh
    assert r["source"] == "hub" and Path(r["path"]).read_bytes() == data


def test_hub_404(hub: FakeHub, tmp_path: Path) -> None:
    r = _resolve(hub, tmp_path / "hf", f"hf://{REPO}/missing.safetensors@main")
    assert r["error"] == "ModelError" and "404" in r["message"] and "missing.safetensors" in r["message"]
    r = _resolve(hub, tmp_path / "hf", f"hf://{REPO}/x.safetensors@nobranch")
    assert r["error"] == "ModelError" and "revision 'nobranch' not found" in r["message"]
    r = _resolve(hub, tmp_path / "hf", "hf://other/repo/x.safetensors@main")
    assert r["error"] == "ModelError" and "repository other/repo not found" in r["message"]


def test_hf_spec_verified_by_etag_and_pickles_refused(hub: FakeHub, tmp_path: Path) -> None:
    data = _weights_bytes(tmp_path)
    sha = hub.add("good.safetensors", data)
    r = _resolve(hub, tmp_path / "hf", f"hf://{REPO}/good.safetensors@{COMMIT}", load=True)
    assert r["source"] == "hub" and r["sha256"] == sha  # checked against the Hub's sha256 ETag

    # A pickle on the Hub: refused before any request when it is named as one...
    hub.server.clear_log()  # type: ignore[attr-defined]
    pickle = tmp_path / "p.pt"
    torch.save({"w": torch.zeros(2)}, pickle)
    hub.add("model.pt", pickle.read_bytes())
    r = _resolve(hub, tmp_path / "hf", f"hf://{REPO}/model.pt@main")
    assert r["error"] == "ModelError" and "only .safetensors" in r["message"]
    assert _requests(hub) == []
    # ...and refused by the safetensors parser (never unpickled) when disguised as safetensors.
    hub.add("evil.safetensors", pickle.read_bytes())
    r = _resolve(hub, tmp_path / "hf", f"hf://{REPO}/evil.safetensors@main", load=True)
    assert r["error"] == "ModelError" and "not a valid safetensors file" in r["message"]
