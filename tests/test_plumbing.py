"""The shared owners of issue 24: one image lister, one batch planner, one model cache, --sigma parsed
once.  No torch needed."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from aecli import batch, cache
from aecli.denoise.noise import Sigma
from aecli.errors import UserError
from aecli.images.walk import walk_images


def _touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_lister_modes(tmp_path):
    _touch(tmp_path, "a.png", "sub/b.JPG", ".h/c.png", "notes.txt")
    assert walk_images(tmp_path) == [tmp_path / "a.png", tmp_path / "sub" / "b.JPG"]
    one = tmp_path / "notes.txt"
    assert walk_images(one, file_ok=True) == [one]  # a file is itself, whatever its extension
    with pytest.raises(UserError, match="not a directory"):
        walk_images(one)
    with pytest.raises(UserError, match="input not found"):
        walk_images(tmp_path / "missing", file_ok=True)
    assert walk_images(tmp_path / "missing", file_ok=True, lenient=True) == []  # training data: none
    assert walk_images(tmp_path, (".txt",)) == [one]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_lister_unreadable_folder(tmp_path):
    _touch(tmp_path, "a.png", "locked/b.png")
    (tmp_path / "locked").chmod(0)
    try:
        with pytest.raises(UserError, match="cannot read directory"):
            walk_images(tmp_path)
        assert walk_images(tmp_path, lenient=True) == [tmp_path / "a.png"]
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_planner_suffix_and_guard(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "in" / "out"
    _touch(src, "a.png", "b.gif", "out/old.png")
    # a .lat per image (compress): without the guard, files under the output folder are inputs like the others
    assert [o for _, o in batch.plan(src, dst, (".png", ".gif"), ".lat")] == [dst / "a.lat", dst / "b.lat",
                                                                              dst / "out" / "old.lat"]
    keep = lambda f: f.suffix if f.suffix == ".png" else ".png"  # noqa: E731
    pairs = batch.plan(src, dst, (".png", ".gif"), keep, guard_inputs=True)  # images out: out/ is no input
    assert pairs == [(src / "a.png", dst / "a.png"), (src / "b.gif", dst / "b.png")]
    with pytest.raises(UserError, match="is the input folder"):
        batch.plan(src, src, (".png",), ".png", guard_inputs=True)
    assert len(batch.plan(src, src, (".png",), ".lat")) == 2  # .lat beside the images
    with pytest.raises(UserError, match="no input files found"):
        batch.plan(src, dst, (".webp",), ".lat")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UserError, match="must be a folder"):
        batch.plan(src, tmp_path / "file", (".png",), ".lat")


@dataclass
class _Slow:
    files: object
    device: str
    loads = 0

    @classmethod
    def load(cls, files, device):
        cls.loads += 1
        time.sleep(0.05)
        return cls(files, device)

    @property
    def name(self) -> str:
        return self.files.name


@dataclass
class _Files:
    name: str
    weights: Path
    meta: dict


def test_model_cache_loads_once_per_files_and_device():
    store = cache.ModelCache()
    f = _Files("m", Path("/x/m.safetensors"), {"fingerprint": "12345678"})
    got = []
    threads = [threading.Thread(target=lambda: got.append(store.get(_Slow, f, "cpu"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _Slow.loads == 1 and all(m is got[0] for m in got)  # threads asking at once share one load
    assert store.get(_Slow, f, "cuda") is not got[0]
    retrained = _Files("m", f.weights, {"fingerprint": "87654321"})
    assert store.get(_Slow, retrained, "cpu") is not got[0] and _Slow.loads == 3
    store.clear()
    assert store.get(_Slow, f, "cpu") is not got[0]


def test_sigma_is_parsed_once_into_a_typed_value():
    assert Sigma.parse("15") == Sigma(15.0) and Sigma.parse(25) == Sigma(25.0) and Sigma.parse(" 7.5 ").given
    assert Sigma.parse("auto") == Sigma.parse(None) == Sigma.parse("blind") == Sigma.parse("") == Sigma()
    s = Sigma.parse("12")
    assert Sigma.parse(s) is s and not Sigma().given
    for bad, shown in (("abc", "'abc'"), ("300", "300"), (-1, "-1"), ("nan", "nan")):
        with pytest.raises(UserError, match=f"--sigma must be a number from 0 to 255 or 'auto', not {shown}"):
            Sigma.parse(bad)
