"""``push vcenter``: upload an ISO, or a disk image as the VMDK pair a datastore expects.

An ISO goes up as it is. Any other disk image (distrokit's streamOptimized ``vmdk`` output, a
raw image, qcow2) is converted with ``qemu-img`` to the ``NAME.vmdk`` descriptor + the
``NAME-flat.vmdk`` extent that ESXi stores, and both are uploaded, extent first.

Each file is PUT over HTTPS to the datastore's ``/folder`` interface under a temporary name,
read back and checked (size and sha256), then moved into place: an interrupted upload never
leaves a wrong file under the final name, and re-running the command restarts it. A file that
is already there with the same bytes is not sent again. Progress goes to a callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import posixpath
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distrokit.errors import UsageError
from distrokit.host import Host
from distrokit.push.vsphere import Session, VSphereError, iter_chunks

# Called as progress(file name, bytes done, bytes total, phase), phase "upload" or "verify".
Progress = Callable[[str, int, int, str], None]

_CHUNK = 1 << 20
_ISO_SUFFIXES = (".iso",)


@dataclass(frozen=True)
class Uploaded:
    """A file now on the datastore."""

    path: str  # [datastore] folder/name
    size: int
    sha256: str
    sent: bool  # False when the same bytes were already there


@dataclass(frozen=True)
class Medium:
    """What a VM boots from, on the datastore: an ISO or the descriptor of a VMDK pair."""

    kind: str  # "iso" or "vmdk"
    path: str  # [datastore] folder/name.iso or .vmdk
    sha256: str  # of the local file it came from ("" when it was already on the datastore)


def is_iso(path: Path | str) -> bool:
    """Whether `path` names an ISO (by its suffix, the rule LinuxKit applies)."""
    return str(path).lower().endswith(_ISO_SUFFIXES)


def sha256_file(path: Path) -> str:
    """The sha256 of a local file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter_chunks(f, _CHUNK):
            h.update(chunk)
    return h.hexdigest()


def default_folder(path: Path) -> str:
    """LinuxKit's default datastore folder: the file name without its suffix."""
    return path.name.rsplit(".", 1)[0] if "." in path.name else path.name


def push(
    session: Session,
    path: Path,
    *,
    folder: str | None = None,
    host: Host | None = None,
    progress: Progress | None = None,
    sha256: str | None = None,
) -> Medium:
    """Upload `path` (an ISO or a disk image) to ``[datastore] folder/``; the medium it gives."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    folder = (folder if folder is not None else default_folder(path)).strip("/")
    digest = sha256 or sha256_file(path)
    if is_iso(path):
        done = upload_file(session, path, posixpath.join(folder, path.name), progress, digest)
        return Medium("iso", done.path, digest)
    stem = default_folder(path)
    with tempfile.TemporaryDirectory(prefix=".distrokit-vmdk-", dir=path.parent) as tmp:
        descriptor, flat = convert_to_flat_vmdk(host or Host(), path, Path(tmp), stem)
        upload_file(session, flat, posixpath.join(folder, flat.name), progress)
        done = upload_file(session, descriptor, posixpath.join(folder, descriptor.name), progress)
    return Medium("vmdk", done.path, digest)


def convert_to_flat_vmdk(host: Host, image: Path, workdir: Path, stem: str) -> tuple[Path, Path]:
    """Convert `image` to ``stem.vmdk`` + ``stem-flat.vmdk`` in `workdir` (monolithicFlat, the
    layout of a disk on an ESXi datastore)."""
    host.check_tools(["qemu-img"])
    descriptor = workdir / f"{stem}.vmdk"
    host.run(
        [
            "qemu-img", "convert", "-O", "vmdk",
            "-o", "subformat=monolithicFlat,adapter_type=lsilogic",
            image, descriptor,
        ]
    )  # fmt: skip
    flat = workdir / f"{stem}-flat.vmdk"
    if not flat.is_file():
        raise VSphereError(f"qemu-img did not write {flat.name} when converting {image}")
    return descriptor, flat


def upload_file(
    session: Session,
    local: Path,
    remote: str,
    progress: Progress | None = None,
    sha256: str | None = None,
) -> Uploaded:
    """Upload one file to `remote` (a path on the session's datastore), verified, restartable."""
    size = local.stat().st_size
    digest = sha256 or sha256_file(local)
    final = session.ds_path(remote)
    if _remote_matches(session, remote, size, digest, progress=progress, name=local.name):
        return Uploaded(final, size, digest, sent=False)
    head, tail = posixpath.split(remote)
    partial = posixpath.join(head, f".{tail}.partial")
    try:
        _put(session, local, partial, size, progress, final=final)
        got_size, got_digest = _read_back(session, partial, size, progress, local.name)
        if (got_size, got_digest) != (size, digest):
            raise VSphereError(
                f"{final}: read back {got_size} bytes with sha256 {got_digest[:12]}..., "
                f"sent {size} bytes with sha256 {digest[:12]}..."
            )
        session.wait(
            session.content.fileManager.MoveDatastoreFile_Task(
                sourceName=session.ds_path(partial),
                sourceDatacenter=session.datacenter,
                destinationName=final,
                destinationDatacenter=session.datacenter,
                force=True,
            ),
            f"moving {session.ds_path(partial)} to {final}",
        )
    except BaseException:
        _forget(session, partial)
        raise
    return Uploaded(final, size, digest, sent=True)


def _forget(session: Session, partial: str) -> None:
    """Remove a partial upload if the server can still be reached; never masks the real error."""
    with contextlib.suppress(Exception):
        session.delete_file(session.ds_path(partial))


def _put(
    session: Session,
    local: Path,
    remote: str,
    size: int,
    progress: Progress | None,
    *,
    final: str | None = None,
) -> None:
    """PUT `local` to `remote`; errors name `final`, the name the user asked for."""
    final = final or session.ds_path(remote)
    conn = session.http()
    sent = 0
    try:
        conn.putrequest("PUT", session.folder_url(remote), skip_accept_encoding=True)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.putheader("Cookie", session.cookie)
        conn.endheaders()
        with local.open("rb") as f:
            for chunk in iter_chunks(f, _CHUNK):
                conn.send(chunk)
                sent += len(chunk)
                if progress:
                    progress(local.name, sent, size, "upload")
        resp = conn.getresponse()
        body = resp.read(4096).decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as err:
        raise VSphereError(
            f"upload of {local.name} to {final} broke off after "
            f"{_mib(sent)} of {_mib(size)}: {err or type(err).__name__}",
            hint="nothing was put in place; run the command again to restart the upload",
        ) from err
    finally:
        conn.close()
    if resp.status not in (200, 201, 204):
        raise VSphereError(
            f"upload of {local.name} to {final} was refused: "
            f"HTTP {resp.status} {resp.reason}" + (f": {body[:200]}" if body else "")
        )


def _open_get(session: Session, remote: str) -> tuple[http.client.HTTPSConnection, Any]:
    conn = session.http()
    conn.request("GET", session.folder_url(remote), headers={"Cookie": session.cookie})
    return conn, conn.getresponse()


def _read_back(
    session: Session, remote: str, size: int, progress: Progress | None, name: str
) -> tuple[int, str]:
    """Size and sha256 of `remote` as the server returns it."""
    h = hashlib.sha256()
    got = 0
    try:
        conn, resp = _open_get(session, remote)
        try:
            if resp.status != 200:
                raise VSphereError(
                    f"cannot read back {session.ds_path(remote)}: HTTP {resp.status} {resp.reason}"
                )
            while chunk := resp.read(_CHUNK):
                h.update(chunk)
                got += len(chunk)
                if progress:
                    progress(name, got, size, "verify")
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as err:
        raise VSphereError(f"reading back {session.ds_path(remote)} failed: {err}") from err
    return got, h.hexdigest()


def _remote_matches(
    session: Session, remote: str, size: int, digest: str, *, progress: Progress | None, name: str
) -> bool:
    """Whether `remote` already holds exactly these bytes (then the upload is skipped)."""
    try:
        conn, resp = _open_get(session, remote)
    except (OSError, http.client.HTTPException):
        return False
    try:
        length = resp.getheader("Content-Length")
        if resp.status != 200 or length is None or int(length) != size:
            return False
    finally:
        conn.close()
    return _read_back(session, remote, size, progress, name) == (size, digest)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
