"""Bad documents side by side with the exact message each must produce (file:line:col: path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.config.load import load_config
from distrokit.errors import ConfigError

SVC = "services:\n  - name: a\n    image: alpine\n"

BAD: list[tuple[str, str, list[str]]] = [
    (
        "unknown top-level key",
        "kernal:\n  image: linuxkit/kernel:6.6\n",
        ["bad.yml:1:1: kernal: unknown field (did you mean 'kernel'?)"],
    ),
    (
        "misspelt image field",
        "services:\n  - name: a\n    image: nginx\n  - name: b\n    image: nginx\n"
        "    capabilites:\n      - CAP_CHOWN\n",
        ["bad.yml:6:5: services[1].capabilites: unknown field (did you mean 'capabilities'?)"],
    ),
    (
        "missing image",
        "onboot:\n  - name: a\n",
        ["bad.yml:2:5: onboot[0]: missing required field 'image'"],
    ),
    (
        "missing name",
        "onshutdown:\n  - image: alpine\n",
        ["bad.yml:2:5: onshutdown[0]: missing required field 'name'"],
    ),
    (
        "duplicate key",
        "kernel:\n  image: a\n  image: b\n",
        ["bad.yml:3:3: kernel.image: duplicate key (first at line 2)"],
    ),
    (
        "unknown capability",
        SVC + "    capabilities: [CAP_FOO]\n",
        ["bad.yml:4:20: services[0].capabilities[0]: unknown capability: CAP_FOO"],
    ),
    (
        "capability in lower case",
        SVC + "    capabilities.add: [cap_chown]\n",
        [
            "bad.yml:4:24: services[0].capabilities.add[0]: unknown capability: cap_chown "
            "(did you mean 'CAP_CHOWN'?)"
        ],
    ),
    (
        "YAML 1.1 boolean word",
        SVC + "    readonly: yes\n",
        [
            "bad.yml:4:15: services[0].readonly: expected a boolean (true or false), "
            "got the string 'yes' (only true and false are booleans)"
        ],
    ),
    (
        "integer where a string is expected",
        SVC + "    cwd: 12\n",
        ["bad.yml:4:10: services[0].cwd: expected a string, got an integer (12) (quote it)"],
    ),
    (
        "string where a list is expected",
        SVC + "    env: FOO=1\n",
        [
            "bad.yml:4:10: services[0].env: expected a list, got the string 'FOO=1' "
            "(write [] for an empty list)"
        ],
    ),
    (
        "empty value where a list is expected",
        SVC + "    env:\n",
        ["bad.yml:4:9: services[0].env: expected a list, got null (write [] for an empty list)"],
    ),
    (
        "string where an integer is expected",
        SVC + "    oomScoreAdj: high\n",
        ["bad.yml:4:18: services[0].oomScoreAdj: expected an integer, got the string 'high'"],
    ),
    (
        "bind without destination",
        SVC + "    binds: [/var]\n",
        [
            "bad.yml:4:13: services[0].binds[0]: cannot parse bind, missing ':': /var "
            "(write source:destination)"
        ],
    ),
    (
        "bind with too many fields",
        SVC + "    binds.add: ['/a:/b:ro:x']\n",
        ["bad.yml:4:17: services[0].binds.add[0]: cannot parse bind, too many ':': /a:/b:ro:x"],
    ),
    (
        "tmpfs with too many fields",
        SVC + "    tmpfs: ['/a:b:c']\n",
        ["bad.yml:4:13: services[0].tmpfs[0]: cannot parse tmpfs, too many ':': /a:b:c"],
    ),
    (
        "unknown rlimit",
        SVC + "    rlimits: ['nofiles,10,10']\n",
        [
            "bad.yml:4:15: services[0].rlimits[0]: unknown limit: nofiles "
            "(did you mean 'RLIMIT_NOFILE'?)"
        ],
    ),
    (
        "rlimit without hard limit",
        SVC + "    rlimits: ['nofile,10']\n",
        [
            "bad.yml:4:15: services[0].rlimits[0]: cannot parse rlimit: nofile,10 "
            "(write name,soft,hard)"
        ],
    ),
    (
        "rlimit value not a number",
        SVC + "    rlimits: ['nofile,ten,10']\n",
        [
            "bad.yml:4:15: services[0].rlimits[0]: cannot parse ten as uint64 "
            "(use a number or 'unlimited')"
        ],
    ),
    (
        "device mode not octal",
        SVC + "    devices:\n      - {path: /dev/x, type: c, major: 1, minor: 2, mode: '09'}\n",
        [
            "bad.yml:5:59: services[0].devices[0].mode: "
            "cannot parse device mode as octal value: '09'"
        ],
    ),
    (
        "device without mode",
        SVC + "    devices:\n      - {path: /dev/x, type: c, major: 1, minor: 2}\n",
        [
            "bad.yml:5:9: services[0].devices[0]: missing required field 'mode' "
            "(an octal string such as '0666')"
        ],
    ),
    (
        "device rule of unknown type",
        SVC + "    devices:\n      - {path: all, type: x}\n",
        ["bad.yml:5:27: services[0].devices[0].type: invalid device type: x (one of a, b, c)"],
    ),
    (
        "mount without type",
        SVC + "    mounts:\n      - {destination: /mnt, source: /x}\n",
        ["bad.yml:5:9: services[0].mounts[0]: mount for destination /mnt is missing type"],
    ),
    (
        "mount without destination",
        SVC + "    mounts:\n      - {type: tmpfs}\n",
        ["bad.yml:5:9: services[0].mounts[0]: mount type tmpfs is missing destination"],
    ),
    (
        "file without contents",
        "files:\n  - path: etc/x\n",
        [
            "bad.yml:2:5: files[0]: contents of file (etc/x) not specified "
            "(give contents, source, metadata, symlink or directory)"
        ],
    ),
    (
        "file with source and metadata",
        "files:\n  - path: etc/x\n    source: a\n    metadata: yaml\n",
        ["bad.yml:2:5: files[0]: specified Source and Metadata: etc/x"],
    ),
    (
        "file with contents and source",
        "files:\n  - path: etc/x\n    source: a\n    contents: b\n",
        ["bad.yml:2:5: files[0]: specified Contents and Source: etc/x"],
    ),
    (
        "file with contents and metadata",
        "files:\n  - path: etc/x\n    contents: b\n    metadata: json\n",
        ["bad.yml:2:5: files[0]: specified Contents and Metadata: etc/x"],
    ),
    (
        "directory with contents",
        "files:\n  - path: etc/x\n    directory: true\n    contents: b\n",
        ["bad.yml:2:5: files[0]: directory with contents not allowed: etc/x"],
    ),
    (
        "unsupported metadata format",
        "files:\n  - path: etc/x\n    metadata: toml\n",
        ["bad.yml:3:15: files[0].metadata: unsupported metadata format: toml (yaml or json)"],
    ),
    (
        "file mode not octal",
        "files:\n  - path: etc/x\n    contents: a\n    mode: rwx\n",
        ["bad.yml:4:11: files[0].mode: cannot parse mode as octal value: 'rwx'"],
    ),
    (
        "invalid volume name",
        "volumes:\n  - name: My_Vol\n",
        [
            "bad.yml:2:11: volumes[0].name: invalid volume name: 'My_Vol' "
            "(use lower-case letters, digits, '_' and '-')"
        ],
    ),
    (
        "empty volume name",
        "volumes:\n  - name: ''\n",
        [
            "bad.yml:2:11: volumes[0].name: invalid volume name: '' "
            "(use lower-case letters, digits, '_' and '-')"
        ],
    ),
    (
        "unknown volume format",
        "volumes:\n  - name: v\n    format: squashfs\n",
        ["bad.yml:3:13: volumes[0].format: unknown volume format: squashfs (filesystem or oci)"],
    ),
    (
        "platforms without oci format",
        "volumes:\n  - name: v\n    platforms: [linux/amd64]\n",
        ["bad.yml:3:16: volumes[0].platforms: platforms are only used with format: oci"],
    ),
    (
        "duplicate volume name",
        "volumes:\n  - name: v\n  - name: v\n",
        ["bad.yml:3:5: volumes[1]: duplicate volume name: v (first defined at bad.yml:2:5)"],
    ),
    (
        "duplicate service name",
        SVC + "  - name: a\n    image: busybox\n",
        ["bad.yml:4:5: services[1]: duplicate service name: a (first defined at bad.yml:2:5)"],
    ),
    (
        "uid naming no container",
        "services:\n  - name: redis\n    image: redis\n  - name: a\n    image: alpine\n"
        "    uid: rediss\n",
        ["bad.yml:6:10: services[1].uid: cannot find id: rediss (did you mean 'redis'?)"],
    ),
    (
        "bind of an unknown volume",
        "volumes:\n  - name: data\n" + SVC + "    binds: ['dta:/data']\n",
        ["bad.yml:6:13: services[0].binds[0]: volume dta not found (did you mean 'data'?)"],
    ),
    (
        "read-write bind of a read-only volume",
        "volumes:\n  - name: data\n    readonly: true\n" + SVC + "    binds: ['data:/data']\n",
        [
            "bad.yml:7:13: services[0].binds[0]: volume data is read-only, but attempting to "
            "write into container read-write (add :ro)"
        ],
    ),
    (
        "image reference in upper case",
        "services:\n  - name: a\n    image: Alpine:latest\n",
        [
            "bad.yml:3:12: services[0].image: invalid repository name in image reference "
            "'Alpine:latest' (repository names must be lower case)"
        ],
    ),
    (
        "init reference with empty tag",
        "init:\n  - 'alpine:'\n",
        ["bad.yml:2:5: init[0]: invalid tag '' in image reference 'alpine:'"],
    ),
    (
        "YAML syntax error",
        "services:\n  - name: a\n   image: b\n",
        [
            "bad.yml:3:4: invalid YAML: while parsing a block collection, "
            "did not find expected '-' indicator"
        ],
    ),
    (
        "two documents",
        "kernel: {}\n---\nkernel: {}\n",
        [
            "bad.yml:2:1: invalid YAML: expected a single document in the stream, "
            "but found another document"
        ],
    ),
    (
        "top level is a list",
        "- a\n- b\n",
        ["bad.yml:1:1: (root): expected a mapping, got a list"],
    ),
    (
        "template without package support",
        "services:\n  - name: a\n    image: '@pkg:../pkg/a'\n",
        [
            "bad.yml:3:12: services[0].image: @pkg:../pkg/a: @pkg: templates need "
            "`distrokit pkg` (package support is not available in this installation)"
        ],
    ),
    (
        "sysctl value not a string",
        SVC + "    sysctl:\n      net.ipv4.ip_forward: 1\n",
        [
            "bad.yml:5:28: services[0].sysctl.net.ipv4.ip_forward: expected a string, "
            "got an integer (1) (quote it)"
        ],
    ),
    (
        "id mapping without size",
        SVC + "    uidMappings:\n      - {hostID: 1000, containerID: 0}\n",
        ["bad.yml:5:9: services[0].uidMappings[0]: missing required field 'size'"],
    ),
    (
        "camelCase key in the wrong case",
        SVC + "    resources:\n      memory: {limit: 10, kernelTcp: 1}\n",
        [
            "bad.yml:5:27: services[0].resources.memory.kernelTcp: unknown field "
            "(did you mean 'kernelTCP'?)"
        ],
    ),
    (
        "runtime key in the wrong case",
        SVC + "    runtime:\n      bindNs: {net: /run/netns/a}\n",
        ["bad.yml:5:7: services[0].runtime.bindNs: unknown field (did you mean 'bindNS'?)"],
    ),
    (
        "non-string mapping key",
        SVC + "    annotations:\n      1: a\n",
        ["bad.yml:5:7: services[0].annotations: keys must be strings, got an integer (1)"],
    ),
    (
        "legacy outputs entry without format",
        "outputs:\n  - fmt: iso\n",
        [
            "bad.yml:2:5: outputs[0].fmt: unknown field (did you mean 'format'?)",
            "bad.yml:2:5: outputs[0]: missing required field 'format'",
        ],
    ),
    (
        "unknown trust key",
        "trust:\n  images: [a]\n",
        ["bad.yml:2:3: trust.images: unknown field (did you mean 'image'?)"],
    ),
    (
        "files path leaving the image (stricter than LinuxKit)",
        "files:\n  - path: ../../tmp/x\n    contents: hi\n  - path: etc/../../y\n"
        "    directory: true\n",
        [
            "bad.yml:2:11: files[0].path: path leaves the image: ../../tmp/x "
            "(remove the '..' parts)",
            "bad.yml:4:11: files[1].path: path leaves the image: etc/../../y "
            "(remove the '..' parts)",
        ],
    ),
    (
        "files path naming no file",
        "files:\n  - path: /./\n    contents: hi\n",
        ["bad.yml:2:11: files[0].path: path names no file: '/./'"],
    ),
    (
        "service name with a slash or dots (stricter than LinuxKit)",
        "services:\n  - name: ../../etc\n    image: a\nonboot:\n  - name: ..\n    image: a\n",
        [
            "bad.yml:2:11: services[0].name: invalid name: '../../etc' "
            "(use letters, digits, '.', '_', '+' and '-', no '/')",
            "bad.yml:5:11: onboot[0].name: invalid name: '..' "
            "(use letters, digits, '.', '_', '+' and '-', no '/')",
        ],
    ),
    (
        "empty service name",
        "onshutdown:\n  - name: ''\n    image: a\n",
        ["bad.yml:2:11: onshutdown[0].name: name is empty"],
    ),
    (
        "misspelling from LinuxKit's documentation",
        SVC + "    rmlimits: ['nofile,1,1']\n",
        ["bad.yml:4:5: services[0].rmlimits: unknown field (did you mean 'rlimits'?)"],
    ),
    (
        "one bad entry does not hide the others from name checks",
        "services:\n  - name: db\n    image: x\n    net: [1]\n  - name: app\n    image: y\n"
        "    uid: db\n",
        ["bad.yml:4:10: services[0].net: expected a string, got a list"],
    ),
    (
        "several problems at once, in document order",
        "kernel:\n  image: linuxkit/kernel:6.6\n  cmdline: 3\nservices:\n  - name: a\n"
        "    image: alpine\n    capabilities: [CAP_CHOWN, CAP_NOPE]\n    pid: [host]\n",
        [
            "bad.yml:3:12: kernel.cmdline: expected a string, got an integer (3) (quote it)",
            "bad.yml:7:31: services[0].capabilities[1]: unknown capability: CAP_NOPE",
            "bad.yml:8:10: services[0].pid: expected a string, got a list",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_document_is_rejected_with_exact_messages(
    text: str, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.yml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(["bad.yml"])
    assert info.value.problems == expected


def test_table_is_large_enough() -> None:
    assert len(BAD) >= 25
    assert len({name for name, _, _ in BAD}) == len(BAD)


def test_problems_of_all_files_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.yml").write_text("kernal: {}\n")
    Path("b.yml").write_text(SVC + "    net: [x]\n")
    with pytest.raises(ConfigError) as info:
        load_config(["a.yml", "missing.yml", "b.yml"])
    assert info.value.problems == [
        "a.yml:1:1: kernal: unknown field (did you mean 'kernel'?)",
        "missing.yml: cannot read: No such file or directory",
        "b.yml:4:10: services[0].net: expected a string, got a list",
    ]
