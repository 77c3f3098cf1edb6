"""``build.yml`` ``config:`` -> the ``org.mobyproject.config`` label LinuxKit's ``pkg build``
writes, for package definitions written as LinuxKit's own pkg/ directory writes them.

The expected labels are what LinuxKit v1.8.2's decoder and JSON encoder produce for the same
YAML (unquoted octal device modes kept as their text, ``uid: 0666`` read as octal, camelCase
runtime-spec keys dropped, struct field order, sorted maps, Go's HTML escapes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from buildfix import F, config_from, new_images, read_json, run_build

from distrokit.cli import main
from distrokit.config.load import load_config
from distrokit.packages.buildyml import load_build_yml, parse_build_yml
from distrokit.packages.tag import show_tag

GETTY = """image: getty
config:
  pid: host
  net: host
  binds:
    - /etc/resolv.conf:/etc/resolv.conf
    - /run:/run
    - /dev:/dev
  devices:
    # individual console / tty character devices
    - path: "/dev/console"
      type: c
      major: 5
      minor: 1
      mode: 0666
    - path: "/dev/ttyS0"
      type: c
      major: 4
      minor: 64
      mode: 0620
    - path: all
      type: b
  capabilities:
    - all
  rootfsPropagation: shared
"""
GETTY_LABEL = (
    '{"capabilities":["all"],"binds":["/etc/resolv.conf:/etc/resolv.conf","/run:/run"'
    ',"/dev:/dev"],"devices":[{"path":"/dev/console","type":"c","major":5,"minor":1,"'
    'mode":"0666"},{"path":"/dev/ttyS0","type":"c","major":4,"minor":64,"mode":"0620"'
    '},{"path":"all","type":"b","major":0,"minor":0}],"net":"host","pid":"host","root'
    'fsPropagation":"shared"}'
)

EVERY = """image: every
config:
  capabilities: [CAP_NET_ADMIN, CAP_SYS_ADMIN]
  capabilities.add: [CAP_SYS_TIME]
  ambient: [CAP_NET_BIND_SERVICE]
  mounts:
    - type: bind
      source: /var/run
      destination: /run
      options: [rw, rbind, rshared]
      uidMappings: [{containerID: 0, hostID: 1, size: 2}]
    - {type: tmpfs, destination: /tmp, source: tmpfs}
  binds: [/dev:/dev, "/etc/a b:/etc/a b:ro"]
  binds.add: [/var:/var]
  devices:
    - {path: /dev/console, type: c, major: 5, minor: 1, mode: 0666}
    - {path: /dev/sda, type: b, major: 8, minor: 0, mode: "640"}
    - {path: all, type: a}
  tmpfs: [/tmp, "/run:size=10m"]
  command: [/bin/sh, -c, "echo <hi> && exit 0"]
  env: [PATH=/bin, EMPTY=, NUM=0666]
  cwd: /srv
  net: new
  pid: host
  ipc: /run/netns/x
  uts: new
  userns: /proc/1/ns/user
  hostname: box
  readonly: yes
  maskedPaths: []
  readonlyPaths: [/proc/sys]
  uid: 0666
  gid: "100"
  additionalGids: [1, root, 0o17, "42"]
  noNewPrivileges: false
  oomScoreAdj: -500
  rootfsPropagation: ""
  cgroupsPath: /svc/every
  resources:
    devices: [{allow: false, access: rwm}, {allow: true, type: c, major: 1, minor: 3, access: rw}]
    memory: {limit: 67108864, reservation: 0, kernelTCP: 3, swappiness: 10}
    cpu: {shares: 512, quota: 100000, period: 100000, realtimePeriod: 9, cpus: "0-1"}
    pids: {limit: 32}
    blockio: {weight: 10, leafWeight: 3, weightDevice: [{major: 8, minor: 0, weight: 200}]}
    hugepageLimits: [{pageSize: 2MB, limit: 1}]
    network: {classID: 3, priorities: [{name: eth0, priority: 1}]}
  sysctl: {net.ipv4.ip_forward: 1, kernel.panic: "10", vm.swappiness: 0x10}
  rlimits: ["nofile,1024,2048", "nproc,unlimited,unlimited"]
  uidMappings: [{containerID: 0, hostID: 100, size: 10}]
  gidMappings: [{containerid: 0, hostid: 100, size: 10}]
  annotations: {z: "1", a: "<&>", m: yes}
  runtime:
    cgroups: [systemreserved, podruntime]
    mounts: [{type: bind, source: /a, destination: /b, options: [bind]}]
    mkdir: [/var/lib/every]
    interfaces:
      - {name: eth1, add: veth, peer: veth-every, createInRoot: true}
      - {name: eth2}
    bindNS: {net: /run/netns/every, uts: ""}
    namespace: every
"""
EVERY_LABEL = (
    '{"capabilities":["CAP_NET_ADMIN","CAP_SYS_ADMIN"],"capabilities.add":["CAP_SYS_T'
    'IME"],"ambient":["CAP_NET_BIND_SERVICE"],"mounts":[{"destination":"/run","type":'
    '"bind","source":"/var/run","options":["rw","rbind","rshared"]},{"destination":"/'
    'tmp","type":"tmpfs","source":"tmpfs"}],"binds":["/dev:/dev","/etc/a b:/etc/a b:r'
    'o"],"binds.add":["/var:/var"],"devices":[{"path":"/dev/console","type":"c","majo'
    'r":5,"minor":1,"mode":"0666"},{"path":"/dev/sda","type":"b","major":8,"minor":0,'
    '"mode":"640"},{"path":"all","type":"a","major":0,"minor":0}],"tmpfs":["/tmp","/r'
    'un:size=10m"],"command":["/bin/sh","-c","echo \\u003chi\\u003e \\u0026\\u0026 exit 0'
    '"],"env":["PATH=/bin","EMPTY=","NUM=0666"],"cwd":"/srv","net":"new","pid":"host"'
    ',"ipc":"/run/netns/x","uts":"new","userns":"/proc/1/ns/user","hostname":"box","r'
    'eadonly":true,"maskedPaths":[],"readonlyPaths":["/proc/sys"],"uid":438,"gid":"10'
    '0","additionalGids":[1,"root",15,"42"],"noNewPrivileges":false,"oomScoreAdj":-50'
    '0,"rootfsPropagation":"","cgroupsPath":"/svc/every","resources":{"devices":[{"al'
    'low":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access"'
    ':"rw"}],"memory":{"limit":67108864,"reservation":0,"swappiness":10},"cpu":{"shar'
    'es":512,"quota":100000,"period":100000,"cpus":"0-1"},"pids":{"limit":32},"blockI'
    'O":{"weight":10},"network":{"priorities":[{"name":"eth0","priority":1}]}},"sysct'
    'l":{"kernel.panic":"10","net.ipv4.ip_forward":"1","vm.swappiness":"0x10"},"rlimi'
    'ts":["nofile,1024,2048","nproc,unlimited,unlimited"],"uidMappings":[{"containerI'
    'D":0,"hostID":0,"size":10}],"gidMappings":[{"containerID":0,"hostID":100,"size":'
    '10}],"annotations":{"a":"\\u003c\\u0026\\u003e","m":"yes","z":"1"},"runtime":{"cgro'
    'ups":["systemreserved","podruntime"],"mounts":[{"destination":"/b","type":"bind"'
    ',"source":"/a","options":["bind"]}],"mkdir":["/var/lib/every"],"interfaces":[{"n'
    'ame":"eth1","add":"veth","peer":"veth-every","createInRoot":true},{"name":"eth2"'
    ',"createInRoot":false}],"bindNS":{"net":"/run/netns/every","uts":""},"namespace"'
    ':"every"}}'
)

RUNTIME_ONLY = "image: r\nconfig:\n  runtime:\n    mkdir: [/x]\n"
RUNTIME_ONLY_LABEL = '{"runtime":{"mkdir":["/x"],"bindNS":{}}}'


@pytest.mark.parametrize(
    ("text", "label"),
    [
        pytest.param(GETTY, GETTY_LABEL, id="getty-unquoted-modes"),
        pytest.param(EVERY, EVERY_LABEL, id="every-field-type"),
        pytest.param(RUNTIME_ONLY, RUNTIME_ONLY_LABEL, id="empty-bindNS"),
    ],
)
def test_label_is_what_linuxkit_writes(text: str, label: str) -> None:
    assert parse_build_yml(text, "build.yml").config_json == label


def test_linuxkit_style_package_resolves_and_its_label_works(tmp_path: Path) -> None:
    """``@pkg:`` on a LinuxKit-style package resolves, and a container built from an image
    carrying that label gets the devices LinuxKit would give it."""
    package = tmp_path / "pkg" / "getty"
    package.mkdir(parents=True)
    (package / "build.yml").write_text("org: linuxkit\nnetwork: true\n" + GETTY)
    assert load_build_yml(package).config_json == GETTY_LABEL
    (tmp_path / "system.yml").write_text(
        "services:\n  - name: getty\n    image: '@pkg:./pkg/getty'\n"
    )
    assert main(["validate", str(tmp_path / "system.yml")]) == 0
    ref = load_config([str(tmp_path / "system.yml")], resolve_pkg=show_tag).services[0].image
    assert ref == "linuxkit/getty:latest"  # no git work tree: no hash

    images = new_images(tmp_path)
    images.add(
        "example.org/getty:1", [F("bin", "dir")], labels={"org.mobyproject.config": GETTY_LABEL}
    )
    config = config_from(tmp_path, "services:\n  - name: getty\n    image: example.org/getty:1\n")
    out = tmp_path / "out"
    out.mkdir()
    run_build(images, config, out)
    spec = read_json(out / "sys.tar", "containers/services/getty/config.json")
    devices = {d["path"]: d for d in spec["linux"]["devices"]}
    assert devices["/dev/console"]["fileMode"] == 0o666
    assert devices["/dev/ttyS0"]["fileMode"] == 0o620
    assert json.loads(GETTY_LABEL)["devices"][0]["mode"] == "0666"
