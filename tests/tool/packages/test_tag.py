"""`pkg show-tag` against real git repositories: LinuxKit's tree-hash and dirty rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hosttools import require_tools

from distrokit.cli import main
from distrokit.host import Host
from distrokit.packages.tag import TagOptions, show_tag


def _git(repo: Path, *args: str) -> str:
    return Host().output(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    require_tools("git")
    root = tmp_path / "repo"
    (root / "pkg/hello/sub").mkdir(parents=True)
    (root / "pkg/hello/build.yml").write_text("image: hello\norg: test\n")
    (root / "pkg/hello/sub/file").write_text("one\n")
    (root / "other").write_text("x\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "init")
    return root


def _tree(repo: Path, path: str) -> str:
    return _git(repo, "rev-parse", f"HEAD:{path}").strip()


def test_clean_package_uses_tree_hash(repo: Path) -> None:
    assert show_tag(repo / "pkg/hello") == f"test/hello:{_tree(repo, 'pkg/hello')}"
    # Changes elsewhere in the repository do not change the package's tag.
    (repo / "other").write_text("changed\n")
    assert show_tag(repo / "pkg/hello") == f"test/hello:{_tree(repo, 'pkg/hello')}"


def _content_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()[:7]


def test_modified_package_is_dirty(repo: Path) -> None:
    pkg = repo / "pkg/hello"
    (pkg / "sub/file").write_text("two\n")
    # tracked files in `git ls-files` order (build.yml, sub/file), with their current content
    expected = _content_hash([pkg / "build.yml", pkg / "sub/file"])
    assert show_tag(pkg) == f"test/hello:{_tree(repo, 'pkg/hello')}-dirty-{expected}"


def test_untracked_file_makes_it_dirty(repo: Path) -> None:
    pkg = repo / "pkg/hello"
    (pkg / "new").write_text("new\n")
    expected = _content_hash([pkg / "build.yml", pkg / "sub/file", pkg / "new"])
    assert show_tag(pkg) == f"test/hello:{_tree(repo, 'pkg/hello')}-dirty-{expected}"


def test_repository_root_package_uses_commit_tree(repo: Path) -> None:
    (repo / "build.yml").write_text("image: top\n")
    _git(repo, "add", "build.yml")
    _git(repo, "commit", "-qm", "top")
    tree = _git(repo, "show", "--format=%T", "-s", "HEAD").strip()
    assert show_tag(repo) == f"linuxkit/top:{tree}"


def test_outside_git_is_latest(tmp_path: Path) -> None:
    (tmp_path / "build.yml").write_text("image: loose\n")
    assert show_tag(tmp_path) == "linuxkit/loose:latest"


def test_overrides(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = repo / "pkg/hello"
    assert show_tag(pkg, options=TagOptions(hash="abc", org="me")) == "me/hello:abc"
    monkeypatch.setenv("USER", "alice")
    assert show_tag(pkg, options=TagOptions(dev=True)) == "alice/hello:dev"
    forced = show_tag(pkg, options=TagOptions(force_dirty=True))
    assert forced.startswith(f"test/hello:{_tree(repo, 'pkg/hello')}-dirty-")


def test_cli_show_tag_canonical(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pkg", "show-tag", "-canonical", str(repo / "pkg/hello")]) == 0
    assert capsys.readouterr().out == f"docker.io/test/hello:{_tree(repo, 'pkg/hello')}\n"


def test_untracked_package_is_an_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "pkg/new").mkdir()
    (repo / "pkg/new/build.yml").write_text("image: new\n")
    assert main(["pkg", "show-tag", str(repo / "pkg/new")]) == 1
    err = capsys.readouterr().err
    assert "is not in git" in err and "--hash" in err
