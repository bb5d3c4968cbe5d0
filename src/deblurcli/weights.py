"""Model weights: save and load ``.safetensors`` files, and resolve ``--model`` to a verified file.

A ``--model`` value is one of:

* a local ``.safetensors`` file (e.g. ``OUT/model.safetensors`` written by ``deblur train``);
* ``hf://owner/repo/path/file.safetensors@revision`` (revision defaults to ``main``; pin a commit);
* a registered name (:mod:`deblurcli.registry`), resolved in order: the bundled ``weights/`` folder
  shipped in the package -> the Hugging Face cache -> ``hf_hub_download`` pinned to the entry's
  revision; the file is then checked against the entry's sha256.

Only safetensors are loaded from outside: a Hub file not named ``.safetensors`` is refused before
download, and a file that is not valid safetensors is refused without ever being unpickled.
Offline mode (``offline=True`` or ``HF_HUB_OFFLINE=1``) uses the cache only.

Files carry string metadata: ``format="deblurcli"``, ``architecture``, ``hyperparameters`` (JSON),
``version``, and whatever the writer adds (e.g. the training ``recipe``), so a file rebuilds its model.

Resolution imports no torch (only :func:`load_model` / :func:`save_model` do), so that resolving and
listing stay fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deblurcli.errors import ChecksumError, ModelError, NetworkError, UnknownModelError, WeightsNotAvailableError
from deblurcli.registry import REGISTRY, HubFile, ModelEntry, get_entry

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Metadata value of ``format`` in every file written by :func:`save_model`.
FORMAT = "deblurcli"
#: Bumped when the meaning of the stored tensors or metadata changes incompatibly.
FORMAT_VERSION = "1"

_HF_RE = re.compile(r"^hf://(?P<repo>[^/@]+/[^/@]+)/(?P<file>[^@]+?)(?:@(?P<rev>[^@]+))?$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "on", "yes", "true"}
#: Suffixes that make a --model value a file path rather than a name (pickles are then refused).
_FILE_SUFFIXES = {".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".pkl"}


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a ``--model`` value led.

    Attributes:
        path: the local ``.safetensors`` file (inside the HF cache for Hub files).
        source: ``"file"``, ``"bundled"``, ``"cache"`` or ``"hub"`` (downloaded just now).
        spec: the value as given.
        entry: the registry entry for a name, else ``None``.
        sha256: the verified checksum, when one was known (registry or Hub ETag).
    """

    path: Path
    source: str
    spec: str
    entry: ModelEntry | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded: shown by the CLI and recorded in reports."""

    name: str
    architecture: str
    hyperparameters: dict[str, Any]
    path: Path | None
    source: str
    num_params: int
    sha256: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- saving


def save_model(path: str | Path, model: nn.Module, *, metadata: dict[str, str] | None = None) -> Path:
    """Write a model's weights and rebuild information to a ``.safetensors`` file, atomically.

    Args:
        path: destination file (its folder is created).
        model: a model from :func:`deblurcli.models.create_model` (a DDP or ``torch.compile``
            wrapper is unwrapped); it must have ``.arch`` and ``.hparams``.
        metadata: extra string metadata, e.g. ``{"recipe": json.dumps(cfg)}``; it cannot override
            ``format``, ``architecture`` or ``hyperparameters``.

    Returns:
        The path written.
    """
    import torch
    from safetensors.torch import save_file

    from deblurcli import __version__

    model = _unwrap(model)
    arch, hparams = getattr(model, "arch", None), getattr(model, "hparams", None)
    if not isinstance(arch, str) or not isinstance(hparams, dict):
        raise ModelError("save_model needs a deblurcli model (with .arch and .hparams attributes)")
    meta: dict[str, str] = {"version": __version__}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {type(value).__name__}")
        meta[key] = value
    meta.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        architecture=arch,
        hyperparameters=json.dumps(hparams, sort_keys=True),
    )
    # Own contiguous CPU copies: safetensors refuses shared or non-contiguous storage.
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    tensors = {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v) for k, v in tensors.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from deblurcli.images import new_file_mode

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, new_file_mode(path))  # after save_file, which makes the file anew (0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel keeps the model in .module, torch.compile in ._orig_mod.
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if inner is not None and hasattr(inner, "state_dict"):
            return _unwrap(inner)
    return model


# ----------------------------------------------------------------------------------- resolving


def is_offline(offline: bool | None = None) -> bool:
    """Offline when asked, or when ``HF_HUB_OFFLINE`` is set (read now, not at import)."""
    if offline:
        return True
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def bundled_weights_dir() -> Path | None:
    """The bundled ``weights/`` folder: inside the installed package (the wheel force-includes the
    top-level ``weights/`` as ``deblurcli/weights``) or, in a source checkout, beside ``src/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights", here.parent.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return None


def parse_hf_spec(spec: str) -> HubFile:
    """``hf://owner/repo/path/file.safetensors[@revision]`` -> :class:`HubFile`.

    Raises:
        UnknownModelError: malformed value.
        ModelError: the file is not a ``.safetensors`` file (pickles are never fetched).
    """
    m = _HF_RE.match(spec)
    if m is None:
        raise UnknownModelError(f"malformed Hub model {spec!r}: expected hf://owner/repo/file.safetensors@revision")
    hub = HubFile(m["repo"], m["file"], m["rev"] or "main")
    if not hub.filename.endswith(".safetensors"):
        raise ModelError(
            f"refusing {spec}: only .safetensors files are loaded from the Hub (pickle formats such as "
            ".pt/.pth/.bin/.ckpt can run code when loaded)"
        )
    return hub


def resolve_weights(
    spec: str | Path,
    *,
    offline: bool | None = None,
    registry: dict[str, ModelEntry] | None = None,
    bundled_dir: Path | None = None,
    option: str = "--model",
) -> ResolvedWeights:
    """Turn a ``--model`` value into a verified local ``.safetensors`` file.

    Args:
        spec: a ``.safetensors`` path, ``hf://...``, or a registered name.
        offline: use the Hugging Face cache only (also when ``HF_HUB_OFFLINE`` is set).
        registry: the name table (default :data:`deblurcli.registry.REGISTRY`).
        bundled_dir: the bundled weights folder (default :func:`bundled_weights_dir`).
        option: the command-line option the value came from, named in the hints of errors
            (``deblur train --init`` resolves its value here too).

    Raises:
        UnknownModelError: unknown name or malformed value.
        WeightsNotAvailableError: a registered model with no weights anywhere, or offline and not cached.
        ChecksumError: the file does not match its sha256 (a downloaded file is removed).
        ModelError: not found on the Hub (404), network failure, not a safetensors file name.
    """
    text = str(spec)
    if text.startswith("hf://"):
        hub = parse_hf_spec(text)
        return _resolve_hub(hub, None, None, text, is_offline(offline))
    path = Path(text).expanduser()
    if _is_path_spec(text):
        return _resolve_local(path, text)
    entry = get_entry(text, registry)
    if entry.weightless:
        raise ModelError(f"model {entry.name!r} has no weights: it is not a network (see `deblur models`)")
    bdir = bundled_weights_dir() if bundled_dir is None else bundled_dir
    if bdir is not None and (bdir / entry.weights_filename).is_file():
        bundled = bdir / entry.weights_filename
        sha = None
        if entry.sha256 is not None:
            sha = _verify(bundled, entry.sha256, remove=False)  # never delete files of the installation
        return ResolvedWeights(bundled, "bundled", text, entry, sha)
    if entry.hub is None or entry.sha256 is None:
        raise WeightsNotAvailableError(
            f"no trained weights are available for model {entry.name!r} yet (none bundled, none published "
            f"on the Hub); pass your own with {option} path/to/model.safetensors (e.g. the "
            f"model.safetensors that `deblur train` writes) or {option} hf://owner/repo/file.safetensors@revision"
        )
    return _resolve_hub(entry.hub, entry, entry.sha256, text, is_offline(offline))


def _resolve_local(path: Path, spec: str) -> ResolvedWeights:
    from deblurcli.images import file_problem

    if not path.exists():
        raise ModelError(f"model file {spec} does not exist")
    if path.is_dir():
        raise ModelError(f"model {spec} is a folder; give the .safetensors file inside it")
    problem = file_problem(path, "model")
    if problem:  # a FIFO or device would block or never end
        raise ModelError(f"{spec}: {problem}")
    if path.suffix.lower() != ".safetensors":
        raise ModelError(
            f"{spec}: only .safetensors model files are loaded (pickle checkpoints such as .pt/.pth can run "
            "code when loaded; export the model with deblurcli.weights.save_model)"
        )
    return ResolvedWeights(path, "file", spec)


def cached_hub_file(hub: HubFile) -> Path | None:
    """The Hub file's path in the Hugging Face cache, or ``None``; makes no network request."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub.repo_id, hub.filename, revision=hub.revision)
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def is_cached(entry: ModelEntry, *, bundled_dir: Path | None = None) -> str | None:
    """``"bundled"`` or ``"cache"`` when the entry's weights are on this machine, else ``None``."""
    bdir = bundled_weights_dir() if bundled_dir is None else bundled_dir
    if bdir is not None and (bdir / entry.weights_filename).is_file():
        return "bundled"
    if entry.hub is not None and cached_hub_file(entry.hub) is not None:
        return "cache"
    return None


def _resolve_hub(
    hub: HubFile, entry: ModelEntry | None, sha256: str | None, spec: str, offline: bool
) -> ResolvedWeights:
    # The cache is looked up first, without any request, so a cached model never touches the network.
    cached = cached_hub_file(hub)
    if cached is not None:
        sha = _verify_hub_file(cached, sha256)
        return ResolvedWeights(cached, "cache", spec, entry, sha)
    if offline:
        what = f"model {entry.name!r} ({hub.spec})" if entry is not None else hub.spec
        raise WeightsNotAvailableError(
            f"{what} is not in the Hugging Face cache and offline mode is on (--offline or HF_HUB_OFFLINE); "
            f"fetch it once while online: `deblur fix --model {entry.name if entry else hub.spec} ...` or "
            f"`hf download {hub.repo_id} {hub.filename} --revision {hub.revision}`"
        )
    path = _download(hub, spec)
    sha = _verify_hub_file(path, sha256)
    return ResolvedWeights(path, "hub", spec, entry, sha)


def _download(hub: HubFile, spec: str) -> Path:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    unreachable = _endpoint_unreachable(constants.ENDPOINT)
    if unreachable:
        raise NetworkError(
            f"{spec}: cannot reach the Hub at {constants.ENDPOINT} ({unreachable}) and the file is not cached; "
            "check the network (or HF_ENDPOINT), or use a local .safetensors file"
        )
    try:
        # The library never prints: the Hub client's tqdm bar and its retry log lines are silenced.
        with _quiet_hub_logs():
            return Path(hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision, tqdm_class=_silent_tqdm()))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        # Before EntryNotFoundError, its base class: "not reachable" must not read as "404".
        raise NetworkError(
            f"{spec}: cannot reach the Hub at {constants.ENDPOINT} and the file is not cached ({_first_line(e)})"
        ) from None
    except RevisionNotFoundError:
        raise ModelError(f"{spec}: revision {hub.revision!r} not found in {hub.repo_id} on the Hub (404)") from None
    except RepositoryNotFoundError:
        raise ModelError(f"{spec}: repository {hub.repo_id} not found on the Hub (404, or private)") from None
    except EntryNotFoundError:
        raise ModelError(f"{spec}: file {hub.filename} not found in {hub.repo_id}@{hub.revision} (404)") from None
    except HfHubHTTPError as e:
        raise NetworkError(f"{spec}: download failed: {_first_line(e)}") from None
    except OSError as e:
        raise NetworkError(f"{spec}: download failed: {e}") from None


def _endpoint_unreachable(endpoint: str, timeout: float = 5.0) -> str | None:
    """Why a TCP connection to the Hub endpoint cannot be made (name not resolved, refused, timed
    out), or ``None`` when it can. One attempt: the Hub client retries connection errors five times
    with backoff (~23 s) before a message that reads like a missing file."""
    import socket
    from urllib.parse import urlsplit

    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    if any(os.environ.get(v) for v in proxies):
        return None  # the Hub is reached through the proxy: a direct connection proves nothing
    url = urlsplit(endpoint)
    host = url.hostname
    if not host:
        return f"not a URL: {endpoint!r}"
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return f"bad port in {endpoint!r}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"cannot resolve host {host}: no network or DNS"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as e:
        return f"{e.strerror or e} at {host}:{port}"


class _quiet_hub_logs:
    """Raise huggingface_hub's log level to ERROR for a block (its retry warnings print to stderr)."""

    def __enter__(self) -> None:
        from huggingface_hub.utils import logging as hf_logging

        self._logger = hf_logging.get_logger("huggingface_hub")
        self._level = self._logger.level
        self._logger.setLevel(hf_logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


def _silent_tqdm() -> type:
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Silent(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def _first_line(e: BaseException) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return lines[0] if lines else type(e).__name__


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify_hub_file(path: Path, expected: str | None) -> str | None:
    """Check a Hub file against the registry's sha256 or, failing that, the Hub's own: the cache
    names each blob after its ETag, which for LFS files (all weights) is the content's sha256."""
    if expected is None:
        blob_name = Path(os.path.realpath(path)).name
        expected = blob_name if _SHA256_RE.match(blob_name) else None
    if expected is None:
        return None
    return _verify(path, expected, remove=True)


def _verify(path: Path, expected: str, *, remove: bool) -> str:
    actual = file_sha256(path)
    if actual == expected:
        return actual
    note = ""
    if remove:
        # Remove both the snapshot entry and the blob it points to, so the next run downloads again.
        blob = Path(os.path.realpath(path))
        for p in {Path(path), blob}:
            try:
                p.unlink(missing_ok=True)
            except OSError:  # pragma: no cover - read-only cache: say so below
                pass
        note = "; the bad file was removed, run again to download it afresh"
    raise ChecksumError(f"{path}: checksum mismatch (sha256 {actual[:16]}..., expected {expected[:16]}...){note}")


# ------------------------------------------------------------------------------------- loading


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (no tensors read).

    Raises:
        ModelError: not a safetensors file (it is never unpickled).
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own SafetensorError / OSError / ValueError
        raise ModelError(f"{path}: not a valid safetensors file ({_first_line(e)}); refusing to load it") from None


def _is_path_spec(text: str) -> bool:
    """Whether a ``--model`` value (not ``hf://``) names a file rather than a registered model."""
    path = Path(text).expanduser()
    return path.suffix.lower() in _FILE_SUFFIXES or path.exists() or os.sep in text or "/" in text


def _weightless_entry(spec: str | Path, registry: dict[str, ModelEntry] | None) -> ModelEntry | None:
    """The registry entry of ``spec`` when it names a model without weights, else ``None``."""
    text = str(spec)
    if text.startswith("hf://") or _is_path_spec(text):
        return None
    entry = (REGISTRY if registry is None else registry).get(text)
    return entry if entry is not None and entry.weightless else None


def load_model(
    spec: str | Path,
    *,
    device: Any = "cpu",
    offline: bool | None = None,
    registry: dict[str, ModelEntry] | None = None,
    bundled_dir: Path | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Resolve ``spec`` (see :func:`resolve_weights`), build its architecture and load the weights.

    The model is returned in eval mode on ``device``. Architecture and hyperparameters come from the
    file's metadata; for a registered name whose file has none, from the registry entry. A
    registered model without weights (``blind``) is built from its entry (``source="builtin"``).

    Raises:
        ModelError (and subclasses): see :func:`resolve_weights`; bad file; tensors that do not fit.
    """
    from safetensors.torch import load_file

    from deblurcli.models import ARCHITECTURES, create_model

    entry0 = _weightless_entry(spec, registry)
    if entry0 is not None:
        model = create_model(entry0.architecture, **entry0.hyperparameters).to(device).eval()
        return model, ModelInfo(name=entry0.name, architecture=entry0.architecture, hyperparameters=dict(entry0.hyperparameters),
                                path=None, source="builtin", num_params=0)
    resolved = resolve_weights(spec, offline=offline, registry=registry, bundled_dir=bundled_dir)
    meta = read_metadata(resolved.path)
    entry = resolved.entry
    arch = meta.get("architecture") or (entry.architecture if entry else None)
    if arch is None:
        raise ModelError(
            f"{resolved.path}: no deblurcli metadata (architecture, hyperparameters); "
            "save models with deblurcli.weights.save_model"
        )
    if arch not in ARCHITECTURES:
        raise ModelError(f"{resolved.path}: unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    if entry is not None and arch != entry.architecture:
        raise ModelError(f"{resolved.path}: holds a {arch} model, but {entry.name!r} is a {entry.architecture}")
    if "hyperparameters" in meta:
        try:
            hparams = json.loads(meta["hyperparameters"])
        except json.JSONDecodeError:
            raise ModelError(f"{resolved.path}: hyperparameters metadata is not valid JSON") from None
    else:
        hparams = dict(entry.hyperparameters) if entry else {}
    try:
        model = create_model(arch, **hparams)
    except ValueError as e:
        raise ModelError(f"{resolved.path}: {e}") from None
    try:
        state = load_file(str(resolved.path))
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{resolved.path}: weights do not fit {arch} {hparams}: {_first_line(e)}") from None
    except Exception as e:
        raise ModelError(f"{resolved.path}: cannot read weights ({_first_line(e)})") from None
    model.to(device).eval()
    name = entry.name if entry else (resolved.path.name if resolved.source == "file" else str(spec))
    info = ModelInfo(
        name=name,
        architecture=arch,
        hyperparameters=hparams,
        path=resolved.path,
        source=resolved.source,
        num_params=sum(p.numel() for p in model.parameters()),
        sha256=resolved.sha256,
        metadata=meta,
    )
    return model, info


__all__ = [
    "FORMAT",
    "REGISTRY",
    "ModelInfo",
    "ResolvedWeights",
    "bundled_weights_dir",
    "file_sha256",
    "is_cached",
    "is_offline",
    "load_model",
    "parse_hf_spec",
    "read_metadata",
    "resolve_weights",
    "save_model",
]
