"""Precedence tables for the effective container spec (YAML > label > image config)."""

from __future__ import annotations

from typing import Any

import pytest

from distrokit.config.model import (
    BindNS,
    Config,
    Device,
    DeviceRule,
    Image,
    ImageConfig,
    Mount,
    Origin,
    Resources,
    Runtime,
    Volume,
)
from distrokit.config.rules import CAPABILITIES, RLIMIT_UNLIMITED
from distrokit.errors import ConfigError
from distrokit.system.container import (
    ContainerSpec,
    ImageDefaults,
    MountSpec,
    Namespace,
    Rlimit,
    allocate_ids,
    parse_label,
    resolve_container,
)

IMAGE_DEFAULTS = ImageDefaults(
    entrypoint=("/bin/entry",), cmd=("--flag",), env=("PATH=/bin",), working_dir="/srv"
)
VOLUMES = {
    "data": Volume(name="data"),
    "ro": Volume(name="ro", readonly=True),
}
IDS = {"sshd": 100, "redis": 101}


def resolve(
    label: ImageConfig | None = None,
    defaults: ImageDefaults = IMAGE_DEFAULTS,
    **entry: Any,
) -> ContainerSpec:
    image = Image(name="svc", image="alpine", **entry)
    return resolve_container(image, label, defaults, IDS, VOLUMES)


# (case, yaml entry fields, label, attribute, expected)
PRECEDENCE: list[tuple[str, dict[str, Any], ImageConfig | None, str, Any]] = [
    ("command from image", {}, None, "args", ("/bin/entry", "--flag")),
    ("command from label", {}, ImageConfig(command=("lbl",)), "args", ("lbl",)),
    ("command from yaml", {"command": ("y",)}, ImageConfig(command=("lbl",)), "args", ("y",)),
    ("empty yaml command", {"command": ()}, ImageConfig(command=("lbl",)), "args", ()),
    ("env from image", {}, None, "env", ("PATH=/bin",)),
    ("env from label", {}, ImageConfig(env=("A=1",)), "env", ("A=1",)),
    ("env from yaml", {"env": ("B=2",)}, ImageConfig(env=("A=1",)), "env", ("B=2",)),
    ("cwd from image", {}, None, "cwd", "/srv"),
    ("cwd from label", {}, ImageConfig(cwd="/l"), "cwd", "/l"),
    ("cwd from yaml", {"cwd": "/y"}, ImageConfig(cwd="/l"), "cwd", "/y"),
    ("no capabilities by default", {}, None, "capabilities", ()),
    (
        "label capabilities",
        {},
        ImageConfig(capabilities=("CAP_CHOWN",)),
        "capabilities",
        ("CAP_CHOWN",),
    ),
    (
        "capabilities.add extends the label",
        {"capabilities_add": ("CAP_KILL", "CAP_CHOWN")},
        ImageConfig(capabilities=("CAP_CHOWN",)),
        "capabilities",
        ("CAP_CHOWN", "CAP_KILL"),
    ),
    (
        "yaml capabilities replace label and ignore .add",
        {"capabilities": ("CAP_NET_ADMIN",), "capabilities_add": ("CAP_KILL",)},
        ImageConfig(capabilities=("CAP_CHOWN",)),
        "capabilities",
        ("CAP_NET_ADMIN",),
    ),
    ("capabilities all", {"capabilities": ("ALL",)}, None, "capabilities", CAPABILITIES),
    (
        "capabilities none clears the label",
        {"capabilities": ("none",)},
        ImageConfig(capabilities=("CAP_CHOWN",)),
        "capabilities",
        (),
    ),
    ("ambient all", {}, ImageConfig(ambient=("all",)), "ambient", CAPABILITIES),
    ("readonly default", {}, None, "readonly", False),
    ("readonly from label", {}, ImageConfig(readonly=True), "readonly", True),
    (
        "yaml false beats label true",
        {"readonly": False},
        ImageConfig(readonly=True),
        "readonly",
        False,
    ),
    ("hostname from label", {}, ImageConfig(hostname="l"), "hostname", "l"),
    ("hostname from yaml", {"hostname": "y"}, ImageConfig(hostname="l"), "hostname", "y"),
    (
        "sysctl: explicit empty map clears the label",
        {"sysctl": {}},
        ImageConfig(sysctl={"a": "1"}),
        "sysctl",
        {},
    ),
    ("sysctl from label", {}, ImageConfig(sysctl={"a": "1"}), "sysctl", {"a": "1"}),
    (
        "masked paths from yaml",
        {"masked_paths": ("/y",)},
        ImageConfig(masked_paths=("/l",)),
        "masked_paths",
        ("/y",),
    ),
    ("oomScoreAdj unset", {}, None, "oom_score_adj", None),
    ("oomScoreAdj from label", {}, ImageConfig(oom_score_adj=-5), "oom_score_adj", -5),
    ("uid by name", {"uid": "redis"}, None, "uid", 101),
    ("uid root", {"uid": "root"}, ImageConfig(uid=7), "uid", 0),
    ("uid from label", {}, ImageConfig(uid=7), "uid", 7),
    ("gid by number", {"gid": 42}, None, "gid", 42),
    (
        "additional gids",
        {"additional_gids": ("sshd", 5, "")},
        None,
        "additional_gids",
        (100, 5, 0),
    ),
    (
        "rlimits parsed",
        {"rlimits": ("nofile, 10, unlimited", "RLIMIT_CORE,0,0")},
        None,
        "rlimits",
        (
            Rlimit(type="RLIMIT_NOFILE", soft=10, hard=RLIMIT_UNLIMITED),
            Rlimit(type="RLIMIT_CORE", soft=0, hard=0),
        ),
    ),
    (
        "resources from label",
        {},
        ImageConfig(resources=Resources(pids_limit=5)),
        "resources",
        Resources(pids_limit=5),
    ),
    ("no resources", {}, None, "resources", Resources()),
]


@pytest.mark.parametrize(
    ("entry", "label", "attr", "expected"),
    [c[1:] for c in PRECEDENCE],
    ids=[c[0] for c in PRECEDENCE],
)
def test_precedence(
    entry: dict[str, Any], label: ImageConfig | None, attr: str, expected: Any
) -> None:
    assert getattr(resolve(label, **entry), attr) == expected


def test_cwd_defaults_to_root_when_nothing_sets_it() -> None:
    assert resolve(None, ImageDefaults()).cwd == "/"


NAMESPACES: list[tuple[str, dict[str, Any], ImageConfig | None, tuple[Namespace, ...]]] = [
    ("defaults: new pid and mount", {}, None, (Namespace(type="pid"), Namespace(type="mount"))),
    (
        "host pid",
        {"pid": "host"},
        None,
        (Namespace(type="mount"),),
    ),
    (
        "every namespace new, in LinuxKit order",
        {"net": "new", "ipc": "new", "uts": "new", "pid": "new", "userns": "new"},
        None,
        tuple(Namespace(type=t) for t in ("network", "ipc", "uts", "pid", "user", "mount")),
    ),
    (
        "net none is a new namespace, paths are joined",
        {"net": "none", "ipc": "/run/ipc/x"},
        None,
        (
            Namespace(type="network"),
            Namespace(type="ipc", path="/run/ipc/x"),
            Namespace(type="pid"),
            Namespace(type="mount"),
        ),
    ),
    (
        "label net path, yaml root wins",
        {"net": "root"},
        ImageConfig(net="/run/netns/a", pid="host"),
        (Namespace(type="mount"),),
    ),
    (
        "label net path used",
        {},
        ImageConfig(net="/run/netns/a"),
        (
            Namespace(type="network", path="/run/netns/a"),
            Namespace(type="pid"),
            Namespace(type="mount"),
        ),
    ),
]


@pytest.mark.parametrize(
    ("entry", "label", "expected"),
    [c[1:] for c in NAMESPACES],
    ids=[c[0] for c in NAMESPACES],
)
def test_namespaces(
    entry: dict[str, Any], label: ImageConfig | None, expected: tuple[Namespace, ...]
) -> None:
    assert resolve(label, **entry).namespaces == expected


def test_mounts_tmpfs_binds_mounts_with_volume_substitution() -> None:
    spec = resolve(
        ImageConfig(binds=("/l:/lbl",), tmpfs=("/run:size=1m,mode=755",)),
        binds_add=("data:/data", "/etc/resolv.conf:/etc/resolv.conf:ro"),
        mounts=(
            Mount(type="bind", source="ro", destination="/ro", options=("rbind", "ro")),
            Mount(source="proc"),
            Mount(destination="/run", type="tmpfs", options=("size=2m",)),
        ),
    )
    assert spec.mounts == (
        MountSpec(destination="/run", type="tmpfs", source="tmpfs", options=("size=2m",)),
        MountSpec(destination="/lbl", type="bind", source="/l", options=("rw", "rbind", "rshared")),
        MountSpec(
            destination="/data",
            type="bind",
            source="/containers/volumes/data/merged",
            options=("rw", "rbind", "rshared"),
        ),
        MountSpec(
            destination="/etc/resolv.conf",
            type="bind",
            source="/etc/resolv.conf",
            options=("ro", "rbind"),
        ),
        MountSpec(
            destination="/ro",
            type="bind",
            source="/containers/volumes/ro/merged",
            options=("rbind", "ro"),
        ),
        MountSpec(destination="/proc", type="proc", source="proc"),
    )


def test_yaml_binds_replace_label_binds() -> None:
    spec = resolve(ImageConfig(binds=("/l:/lbl",)), binds=("/y:/y",), binds_add=("/a:/a",))
    assert [m.destination for m in spec.mounts] == ["/y"]


def test_devices_make_nodes_and_cgroup_rules() -> None:
    spec = resolve(
        devices=(
            Device(path="all", type="b"),
            Device(path="/dev/console", type="c", major=5, minor=1, mode="0666"),
        )
    )
    assert spec.devices[0].file_mode == 0o666
    assert spec.device_rules == (
        DeviceRule(allow=True, type="b", access="rwm"),
        DeviceRule(allow=True, type="c", major=5, minor=1, access="rwm"),
    )


def test_runtime_whole_field_and_bindns_per_key() -> None:
    label = ImageConfig(
        runtime=Runtime(mkdir=("/l",), cgroups=("c",), bind_ns=BindNS(net="/l/net", pid="/l/pid"))
    )
    spec = resolve(label, runtime=Runtime(mkdir=("/y",), bind_ns=BindNS(net="/y/net")))
    assert spec.runtime == Runtime(
        cgroups=("c",),
        mounts=(),
        mkdir=("/y",),
        interfaces=(),
        bind_ns=BindNS(cgroup="", ipc="", mnt="", net="/y/net", pid="/l/pid", user="", uts=""),
        namespace="",
    )


def test_bounding_is_sorted_union() -> None:
    spec = resolve(capabilities=("CAP_SYS_ADMIN", "CAP_CHOWN"), ambient=("CAP_KILL",))
    assert spec.capabilities == ("CAP_SYS_ADMIN", "CAP_CHOWN")
    assert spec.bounding == ("CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN")


def test_every_problem_names_the_container() -> None:
    image = Image(
        name="nginx",
        image="nginx",
        capabilities=("CAP_FOO",),
        uid="nobody",
        binds=("/x", "vol:/v", "ro:/r"),
        origin=Origin(file="m.yml", line=14, column=5, path="services[2]"),
    )
    with pytest.raises(ConfigError) as info:
        resolve_container(image, None, ImageDefaults(), IDS, VOLUMES)
    where = "m.yml:14:5: services[2] (nginx)"
    assert info.value.problems == [
        f"{where}: volume vol not found",
        f"{where}: volume ro is read-only, but attempting to write into container read-write "
        "(add :ro to the bind)",
        f"{where}: unknown capability: CAP_FOO",
        f"{where}: cannot find id: nobody",
        f"{where}: cannot parse bind, missing ':': /x (write source:destination)",
    ]


def test_label_problem_from_the_label_itself() -> None:
    image = Image(name="svc", image="alpine")
    label = ImageConfig(capabilities=("CAP_NOPE",))
    with pytest.raises(ConfigError) as info:
        resolve_container(image, label, ImageDefaults(), {}, {})
    assert info.value.problems == ["svc: unknown capability: CAP_NOPE"]


def test_allocate_ids_from_100_in_section_order() -> None:
    config = Config(
        onboot=(Image(name="a", image="x"), Image(name="b", image="x")),
        onshutdown=(Image(name="c", image="x"),),
        services=(Image(name="d", image="x"),),
    )
    assert dict(allocate_ids(config)) == {"a": 100, "b": 101, "c": 102, "d": 103}


def test_allocate_ids_repeated_onboot_name_keeps_the_last_id() -> None:
    config = Config(
        onboot=(Image(name="a", image="x"), Image(name="a", image="y")),
        services=(Image(name="d", image="x"),),
    )
    assert dict(allocate_ids(config)) == {"a": 101, "d": 102}


def test_parse_label_json() -> None:
    label = parse_label(
        '{"capabilities":["CAP_SYS_ADMIN"],"binds":["/a:/b"],"net":"host","readonly":true,'
        '"runtime":{"mkdir":["/var/x"]}}',
        "docker.io/linuxkit/sshd:1",
    )
    assert label == ImageConfig(
        capabilities=("CAP_SYS_ADMIN",),
        binds=("/a:/b",),
        net="host",
        readonly=True,
        runtime=Runtime(mkdir=("/var/x",)),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"name": "x", "net": "host"}',
            ["img (org.mobyproject.config label):1:2: name: name cannot be set in metadata label"],
        ),
        (
            "[1, 2]",
            ["img (org.mobyproject.config label):1:1: (root): expected a mapping, got a list"],
        ),
        (
            '{"capabilities": ["CAP_FOO"], "bogus": 1}',
            [
                "img (org.mobyproject.config label):1:19: capabilities[0]: unknown capability: "
                "CAP_FOO",
                "img (org.mobyproject.config label):1:31: bogus: unknown field",
            ],
        ),
    ],
)
def test_bad_labels(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_label(text, "img")
    assert info.value.problems == expected
