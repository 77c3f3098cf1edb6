"""The connection to a vCenter or ESXi host, shared by ``push vcenter`` and ``run vcenter``.

Owns: parsing LinuxKit's ``--url https://user:pass@host/sdk``, TLS (verified unless the caller
asks otherwise), the login, finding the datacenter, datastore, host and network the user named
(each "not found" error lists what exists), waiting for tasks, and the HTTP ``/folder`` URLs of
datastore files. Nothing is chosen at random: where several candidates exist and none was
named, the error lists them.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from distrokit.errors import DistrokitError, UsageError


class VSphereError(DistrokitError):
    """vCenter/ESXi refused a request, or something the user named does not exist there."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where to connect and what to use there: what the user asked for, nothing looked up yet."""

    url: str
    datacenter: str | None = None
    datastore: str | None = None
    hostname: str | None = None
    insecure: bool = False
    cert_file: Path | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class Endpoint:
    """The parts of ``--url``."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """Split ``https://user:pass@host[:port]/sdk``; user and password are URL-decoded."""
    if "://" not in url:
        url = "https://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        raise UsageError(f"--url must be an https:// URL, not {parts.scheme}://")
    if not parts.hostname:
        raise UsageError("--url has no host name", hint="e.g. https://user:pass@vcenter/sdk")
    if not parts.username:
        raise UsageError(
            f"--url https://{parts.hostname}/... has no user name",
            hint="give it as https://USER:PASSWORD@HOST/sdk (or set VCURL)",
        )
    return Endpoint(
        host=parts.hostname,
        port=parts.port or 443,
        user=urllib.parse.unquote(parts.username),
        password=urllib.parse.unquote(parts.password or ""),
    )


def ssl_context(target: Target) -> ssl.SSLContext:
    """Verifying by default (system CAs, plus `cert_file` when given); `insecure` turns it off."""
    if target.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if target.cert_file is not None:
        try:
            return ssl.create_default_context(cafile=str(target.cert_file))
        except (OSError, ssl.SSLError) as err:
            raise UsageError(f"cannot load --cert-file {target.cert_file}: {err}") from err
    return ssl.create_default_context()


def _names(objs: Sequence[Any]) -> str:
    found = sorted({o.name for o in objs})
    return ", ".join(found) if found else "none"


class Session:
    """A logged-in connection with the datacenter and datastore resolved. Use as a context
    manager (or call `close`) to log out."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.endpoint = parse_url(target.url)
        self.ssl = ssl_context(target)
        self.si = self._login()
        try:
            self.content: Any = self.si.RetrieveContent()
            self.datacenter: Any = self._find_datacenter()
            self.dc_path = self._inventory_path(self.datacenter)
            self.datastore: Any = self._find_datastore()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out; errors on the way out are of no interest."""
        with contextlib.suppress(Exception):
            Disconnect(self.si)

    def _login(self) -> Any:
        ep = self.endpoint
        try:
            return SmartConnect(
                host=ep.host,
                port=ep.port,
                user=ep.user,
                pwd=ep.password,
                sslContext=self.ssl,
                connectionPoolTimeout=int(self.target.timeout),
            )
        except vim.fault.InvalidLogin as err:
            raise VSphereError(
                f"{ep.netloc} refused the login of user '{ep.user}': {err.msg}",
                hint="check the user name and password in --url / VCURL",
            ) from err
        except ssl.SSLCertVerificationError as err:
            raise VSphereError(
                f"cannot verify the TLS certificate of {ep.netloc}: {err.verify_message}",
                hint="trust its CA with --cert-file CA.pem, or skip verification with "
                "--insecure (anyone on the path can then read the password)",
            ) from err
        except (OSError, http.client.HTTPException) as err:
            raise VSphereError(f"cannot connect to {ep.netloc}: {err}") from err
        except vmodl.MethodFault as err:
            raise VSphereError(f"{ep.netloc} refused the login: {err.msg}") from err

    # --- inventory -------------------------------------------------------------------------

    def objects(self, kind: Any, root: Any = None) -> list[Any]:
        """Every managed object of `kind` under `root` (default: the datacenter)."""
        view = self.content.viewManager.CreateContainerView(root or self.datacenter, [kind], True)
        try:
            return list(view.view)
        finally:
            view.Destroy()

    def _find_datacenter(self) -> Any:
        dcs = self.objects(vim.Datacenter, self.content.rootFolder)
        return _pick(
            "datacenter", "--datacenter", self.target.datacenter, dcs, self.endpoint.netloc
        )

    def _inventory_path(self, obj: Any) -> str:
        """``folder/.../name`` of `obj` below the root folder (the ``dcPath`` of a datacenter
        kept in a folder)."""
        names = []
        while obj is not None and obj != self.content.rootFolder:
            names.append(str(obj.name))
            obj = obj.parent
        return "/".join(reversed(names))

    def _find_datastore(self) -> Any:
        stores = self.objects(vim.Datastore)
        where = f"datacenter {self.datacenter.name}"
        return _pick("datastore", "--datastore", self.target.datastore, stores, where)

    def host(self) -> Any:
        """The ESXi host named by ``--hostname``, or the only one; several and none named is an
        error that lists them (the host decides where the VM runs: never picked at random)."""
        hosts = self.objects(vim.HostSystem)
        where = f"datacenter {self.datacenter.name}"
        host = _pick("host", "--hostname", self.target.hostname, hosts, where)
        if self.datastore not in host.datastore:
            raise VSphereError(
                f"host {host.name} cannot reach datastore {self.datastore.name}",
                hint=f"datastores of {host.name}: {_names(host.datastore)}",
            )
        return host

    def network(self, name: str) -> Any:
        """The standard network or distributed port group called `name`."""
        nets = [n for n in self.datacenter.network if n.name == name]
        if not nets:
            raise VSphereError(
                f"network '{name}' not found in datacenter {self.datacenter.name}",
                hint=f"networks there: {_names(self.datacenter.network)}",
            )
        return nets[0]

    def find_vm(self, name: str) -> Any | None:
        """The VM called `name` in the datacenter, or None."""
        found = [vm for vm in self.objects(vim.VirtualMachine) if vm.name == name]
        return found[0] if found else None

    # --- datastore files -------------------------------------------------------------------

    def ds_path(self, path: str) -> str:
        """``[datastore] path`` of a file on our datastore."""
        return f"[{self.datastore.name}] {path}"

    def folder_url(self, path: str) -> str:
        """The ``/folder`` URL path (with query) of `path` on our datastore."""
        query = urllib.parse.urlencode({"dcPath": self.dc_path, "dsName": self.datastore.name})
        return f"/folder/{urllib.parse.quote(path)}?{query}"

    def http(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        """A new HTTPS connection to the server, with the session's TLS settings."""
        ep = self.endpoint
        return http.client.HTTPSConnection(
            ep.host, ep.port, context=self.ssl, timeout=timeout or self.target.timeout
        )

    @property
    def cookie(self) -> str:
        """The session cookie, which the ``/folder`` HTTP interface accepts as login."""
        return str(self.si._stub.cookie).split(";", 1)[0]

    # --- tasks ------------------------------------------------------------------------------

    def wait(self, task: Any, what: str, timeout: float | None = None) -> Any:
        """Wait for `task`, raise `VSphereError` naming `what` if it fails; its result.

        Reads only ``info.state``/``info.error``/``info.result`` through the property
        collector: reading the whole ``info`` of a file or disk manager task fails on some
        servers, whose ``info.entity`` is the manager rather than an inventory object.
        """
        deadline = time.monotonic() + (timeout or 3600.0)
        delay = 0.05
        while True:
            props = self._task_props(task, ("info.state", "info.error"))
            state = props.get("info.state")
            if state == vim.TaskInfo.State.success:
                return self._task_props(task, ("info.result",)).get("info.result")
            if state == vim.TaskInfo.State.error:
                err = props.get("info.error")
                msg = getattr(err, "msg", None) or type(err).__name__
                raise VSphereError(f"{what} failed: {msg}")
            if time.monotonic() > deadline:
                raise VSphereError(f"{what} did not finish within {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _task_props(self, task: Any, paths: Sequence[str]) -> dict[str, Any]:
        pc = self.content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task)],
            propSet=[
                vmodl.query.PropertyCollector.PropertySpec(type=vim.Task, pathSet=list(paths))
            ],
        )
        out: dict[str, Any] = {}
        for obj in pc.RetrieveContents([spec]):
            for prop in obj.propSet:
                out[prop.name] = prop.val
        return out

    def delete_file(self, path: str) -> None:
        """Delete a datastore file or folder (``[ds] path``)."""
        fm = self.content.fileManager
        task = fm.DeleteDatastoreFile_Task(name=path, datacenter=self.datacenter)
        self.wait(task, f"deleting {path}")


def _pick(kind: str, flag: str, name: str | None, objs: Sequence[Any], where: object) -> Any:
    """The object called `name`; with no name, the only one. Errors list the candidates."""
    if name:
        for obj in objs:
            if obj.name == name:
                return obj
        raise VSphereError(
            f"{kind} '{name}' not found in {where}", hint=f"{kind}s there: {_names(objs)}"
        )
    unique = {o.name: o for o in objs}
    if len(unique) == 1:
        return next(iter(unique.values()))
    if not unique:
        raise VSphereError(f"no {kind} in {where}")
    raise VSphereError(
        f"{len(unique)} {kind}s in {where} and no {flag} given: {_names(objs)}",
        hint=f"name one with {flag}",
    )


def iter_chunks(f: Any, size: int = 1 << 20) -> Iterator[bytes]:
    """Read an open binary file in `size` chunks."""
    while chunk := f.read(size):
        yield chunk
