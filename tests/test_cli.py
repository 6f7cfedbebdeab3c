"""The command line through typer's runner and as real subprocess pipelines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli import format as latformat
from aecli.cli import app

from conftest import photo_like, run_together

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(arr).save(path)
    return path


@pytest.fixture
def photo(tmp_path, rng):
    return save(tmp_path / "photo.png", photo_like(48, 64, rng))


def test_compress_decompress_info(tmp_path, photo):
    lat = tmp_path / "photo.lat"
    r = run("compress", photo, lat, "-m", "tiny-hp", "-Q", "3")
    assert r.exit_code == 0, r.output
    assert "quality 3" in r.stderr and "bpp" in r.stderr
    r = run("info", lat, "--json")
    assert r.exit_code == 0, r.output
    [d] = json.loads(r.stdout)  # a list, one object per file, also for one file
    assert (d["model"], d["quality"], d["width"], d["height"]) == ("tiny-hp", 3, 64, 48)
    assert d["file_bytes"] == lat.stat().st_size and d["model_available"]
    assert abs(d["bpp"] - 8 * lat.stat().st_size / (64 * 48)) < 1e-9
    out = tmp_path / "back.webp"
    r = run("decompress", lat, out)
    assert r.exit_code == 0, r.output
    with PILImage.open(out) as im:
        assert im.format == "WEBP" and im.size == (64, 48)


def test_default_output_name_and_quality(tmp_path, photo):
    r = run("compress", photo, "-m", "tiny-hp")
    assert r.exit_code == 0, r.output
    lat = latformat.unpack((tmp_path / "photo.lat").read_bytes())
    assert lat.quality == 2  # the model's default


def test_target_bpp_and_max_bytes(tmp_path, photo):
    sizes = {}
    for q in (1, 2, 3):
        run("compress", photo, tmp_path / f"q{q}.lat", "-m", "tiny-hp", "-Q", q)
        sizes[q] = (tmp_path / f"q{q}.lat").stat().st_size
    r = run("compress", photo, tmp_path / "fit.lat", "-m", "tiny-hp", "--max-bytes", sizes[2])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "fit.lat").stat().st_size <= sizes[2]
    r = run("compress", photo, tmp_path / "bpp.lat", "-m", "tiny-hp", "--target-bpp", 8 * sizes[3] / (64 * 48))
    assert latformat.unpack((tmp_path / "bpp.lat").read_bytes()).quality == 3
    r = run("compress", photo, tmp_path / "x.lat", "-m", "tiny-hp", "--max-bytes", 10, "--target-bpp", 1)
    assert r.exit_code == 1 and "not both" in r.stderr


def test_models_lists_user_models():
    r = run("models", "--json")
    assert r.exit_code == 0, r.output
    names = {m["name"]: m for m in json.loads(r.stdout)}
    assert names["tiny-hp"]["qualities"] == [1, 2, 3] and names["tiny-hp"]["task"] == "codec"
    r = run("models")
    assert "tiny-hp" in r.stdout and "1..3" in r.stdout


def test_folder_batch(tmp_path, rng):
    src = tmp_path / "in"
    save(src / "a.png", photo_like(20, 24, rng))
    save(src / "sub" / "b.jpg", photo_like(30, 20, rng))
    (src / "sub" / "broken.png").write_bytes(b"not an image")
    dst = tmp_path / "out"
    r = run("compress", src, dst, "-m", "tiny-hp")
    assert r.exit_code == 1  # one file failed
    assert "broken.png" in r.stderr and "done 2, skipped 0, failed 1" in r.stderr
    assert (dst / "a.lat").exists() and (dst / "sub" / "b.lat").exists()
    assert not (dst / "sub" / "broken.lat").exists()
    (src / "sub" / "broken.png").unlink()
    before = (dst / "a.lat").stat().st_mtime_ns
    r = run("compress", src, dst, "-m", "tiny-hp")
    assert r.exit_code == 0 and "skipped 2" in r.stderr
    assert (dst / "a.lat").stat().st_mtime_ns == before
    r = run("compress", src, dst, "-m", "tiny-hp", "--force")
    assert "done 2" in r.stderr
    back = tmp_path / "back"
    r = run("decompress", dst, back)
    assert r.exit_code == 0, r.output
    assert (back / "a.png").exists() and (back / "sub" / "b.png").exists()


def test_folder_batch_with_workers_matches_one_worker(tmp_path, rng):
    src = tmp_path / "in"
    for i in range(6):
        save(src / f"{i}.png", photo_like(24 + 4 * i, 20, rng))
    (src / "3.png").write_bytes(b"not an image")  # in the middle: the others still finish
    outs = {}
    for j in (1, 3):
        dst = tmp_path / f"out{j}"
        r = run("compress", src, dst, "-m", "tiny-hp", "--workers", j)
        assert r.exit_code == 1
        assert "3.png" in r.stderr and "done 5, skipped 0, failed 1" in r.stderr
        outs[j] = {p.name: p.read_bytes() for p in sorted(dst.glob("*.lat"))}
    assert len(outs[1]) == 5 and outs[1] == outs[3]  # the same bytes, whatever the number of workers
    back = tmp_path / "back"
    r = run("decompress", tmp_path / "out3", back, "-j", "2")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in back.glob("*.png")) == ["0.png", "1.png", "2.png", "4.png", "5.png"]
    r = run("decompress", tmp_path / "out3", back, "-j", "2")
    assert r.exit_code == 0 and "done 0, skipped 5, failed 0" in r.stderr
    assert run("compress", src, tmp_path / "x", "-j", "0").exit_code == 2  # usage error


@pytest.mark.parametrize(
    "args,message",
    [
        (["compress", "{tmp}/missing.png", "{tmp}/x.lat"], "input not found"),
        (["compress", "{tmp}/notimage.png", "{tmp}/x.lat"], "not a readable image"),
        (["compress", "{tmp}/photo.png", "{tmp}/photo.png"], "same file as the input"),
        (["compress", "{tmp}/photo.png", "{tmp}/x.lat", "-m", "nosuch"], "not found"),
        (["compress", "{tmp}/photo.png", "{tmp}/x.lat", "-Q", "7"], "quality 7"),
        (["compress", "{tmp}/photo.png", "{tmp}/photo.png/x.lat"], "cannot write"),
        (["decompress", "{tmp}/truncated.lat", "{tmp}/x.png"], "truncated"),
        (["decompress", "{tmp}/garbage.lat", "{tmp}/x.png"], "not a .lat file"),
        (["decompress", "{tmp}/good.lat", "{tmp}/x.png", "-m", "tiny-fp"], "needs model 'tiny-hp'"),
        (["decompress", "{tmp}/good.lat", "{tmp}/x.xyz"], "xyz"),
        (["info", "{tmp}/truncated.lat"], "truncated"),
        (["compress", "{tmp}/photo.png", "{tmp}/x.lat", "--device", "tpu9"], "unknown device 'tpu9'"),
        (["decompress", "{tmp}/good.lat", "{tmp}/x.png", "--device", "nonsense"], "unknown device 'nonsense'"),
        (["train", "{tmp}/missing", "--out", "{tmp}/m"], "not found"),
    ],
)
def test_user_errors_are_one_line(tmp_path, photo, args, message):
    (tmp_path / "notimage.png").write_bytes(b"hello")
    run("compress", photo, tmp_path / "good.lat", "-m", "tiny-hp")
    good = (tmp_path / "good.lat").read_bytes()
    (tmp_path / "truncated.lat").write_bytes(good[:-7])
    (tmp_path / "garbage.lat").write_bytes(b"GIF89a" + bytes(40))
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(tmp=tmp_path) for a in args]
    if argv[0] == "compress" and "-m" not in argv:
        argv += ["-m", "tiny-hp"]
    r = run(*argv)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecli: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, nothing left behind
    assert (tmp_path / "photo.png").read_bytes() == photo.read_bytes()


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_subprocess_pipeline(tmp_path, photo):
    """cat photo.png | aecli compress - - | aecli decompress - - > back.png"""
    cmd = [sys.executable, "-m", "aecli"]
    comp = subprocess.run(cmd + ["compress", "-", "-", "-m", "tiny-hp"], input=photo.read_bytes(), capture_output=True, env=_env(), check=True)
    assert comp.stdout.startswith(latformat.MAGIC)
    # the whole file, and the file less its last 3 bytes
    dec, bad = run_together(*[(cmd + ["decompress", "-", "-"], dict(input=data, capture_output=True, env=_env()))
                              for data in (comp.stdout, comp.stdout[:-3])])
    assert dec.returncode == 0 and dec.stdout.startswith(b"\x89PNG"), dec.stderr
    # the same as going through files
    run("compress", photo, tmp_path / "f.lat", "-m", "tiny-hp")
    assert (tmp_path / "f.lat").read_bytes() == comp.stdout
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr.decode().strip().count("\n") == 0 and "truncated" in bad.stderr.decode()


def test_help_and_info_do_not_import_torch(tmp_path, photo):
    run("compress", photo, tmp_path / "p.lat", "-m", "tiny-hp")
    code = (
        "import sys\nfrom aecli.cli import app\n"
        "for argv in (['--help'], ['info', sys.argv[1]], ['models']):\n"
        "    try:\n        app(argv)\n    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.lat")], capture_output=True, text=True, env=_env())
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr


def test_models_are_sized_without_torchs_compiler():
    """registry.check_size builds a user's model on torch's meta device before reading its weights;
    any arithmetic there imports torch._dynamo, about 2 s more for every command that loads one."""
    code = (
        "import sys, torch\n"
        "from aecli.codec import model as cm\nfrom aecli.denoise import model as dm\nfrom aecli.family import models as fm\n"
        "with torch.device('meta'):\n"
        "    for kind in cm.KINDS:\n"
        "        cm.build({'kind': kind, 'n': 8, 'm': 12, 'lambdas': [0.01, 0.02]}).state_dict()\n"
        "    for kind in fm.KINDS:\n"
        "        fm.build(fm.default_config(kind, (1, 28, 28), 16)).state_dict()\n"
        "    dm.build({'widths': [8, 16], 'blocks': 1, 'estimator': {'widths': [4, 8], 'layers': 1}}).state_dict()\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\nprint('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_compare_and_eval(tmp_path, rng):
    imgs = tmp_path / "imgs"
    save(imgs / "a.png", photo_like(64, 80, rng))
    save(imgs / "b.png", photo_like(64, 64, rng))
    r = run("compare", imgs, "-m", "tiny-hp", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["image"] for x in rows] == ["a.png", "b.png"]
    for x in rows:
        assert x["jpeg_bytes"] is None or x["jpeg_bytes"] <= x["bytes"]
    out = tmp_path / "ev"
    r = run("eval", imgs, "-m", "tiny-hp", "--out", out, "--baselines", "jpeg", "--name", "t")
    assert r.exit_code == 0, r.output
    res = json.loads((out / "t.json").read_text())
    assert [p["quality"] for p in res["curves"]["aecli"]] == [1, 2, 3]
    assert len(res["curves"]["jpeg"]) == 10 and "jpeg" in res["bd_rate_vs"]
    assert (out / "t.md").read_text().startswith("# Rate-distortion")
    assert (out / "t.csv").exists()
    r = run("eval", imgs, "-m", "tiny-hp", "--baselines", "gif")
    assert r.exit_code == 1 and "unknown baseline" in r.stderr
    (out / "t.partial.jsonl").write_text("{}\n")  # not a record of an eval run
    r = run("eval", imgs, "-m", "tiny-hp", "--out", out, "--baselines", "", "--name", "t", "--resume")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "not a record of an aecli eval run" in r.stderr
    r = run("eval", imgs, "-m", "tiny-hp", "--out", out, "--baselines", "", "--name", "t")  # starts over
    assert r.exit_code == 0, r.output
    assert not (out / "t.partial.jsonl").exists()


def test_decompress_exact(tmp_path, photo):
    from aecli.codec import api

    lat = tmp_path / "photo.lat"
    assert run("compress", photo, lat, "-m", "tiny-hp").exit_code == 0
    r = run("decompress", lat, tmp_path / "exact.png", "--exact")
    assert r.exit_code == 0, r.output
    codec = api.load_codec("tiny-hp")
    want = codec.decompress(latformat.unpack(lat.read_bytes()), exact=True).pixels
    with PILImage.open(tmp_path / "exact.png") as im:
        assert np.array_equal(np.asarray(im), want)


def test_compress_scale_option(tmp_path, photo):
    """--scale 1 codes at the image's own size, --scale 1.375 at 11/8 (info says so), auto keeps
    the cheaper of the two; bad values are one-line errors that write nothing."""
    from aecli import format as latformat

    out = {}
    for opt in ("1", "1.375", "auto"):
        lat = tmp_path / f"s{opt}.lat"
        r = run("compress", photo, lat, "-m", "tiny-hp", "-Q", "3", "--scale", opt)
        assert r.exit_code == 0, r.output
        out[opt] = lat.read_bytes()
    assert latformat.unpack(out["1"]).scale == 8 and latformat.unpack(out["1.375"]).scale == 11
    assert out["auto"] in (out["1"], out["1.375"])
    r = run("info", tmp_path / "s1.375.lat")
    assert "coded at 88x66, scale 1.375" in r.stdout and ".lat v2" in r.stdout
    r = run("compress", photo, tmp_path / "x.lat", "-m", "tiny-hp", "-Q", "3", "--scale", "1.375")
    assert "coded at 11/8 of its size" in r.stderr
    for bad, msg in (("big", "--scale must be 'auto'"), ("1.3", "multiple of 1/8"), ("3", "from 1 to 2")):
        r = run("compress", photo, tmp_path / "bad.lat", "-m", "tiny-hp", "--scale", bad)
        assert r.exit_code != 0 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run("compress", photo, tmp_path / "bad.lat", "-m", "tiny-hp", "-Q", "1", "--scale", "1.375")
    assert r.exit_code != 0 and "quality 1 cannot be coded at scale 11/8" in r.stderr
    assert not (tmp_path / "bad.lat").exists()
