"""Bad inputs for every command: one line on stderr, a non-zero exit, no traceback, nothing
written, inputs untouched; in folder batches the bad file is reported and the rest is done."""

import dataclasses
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli import format as latformat
from aecli.cli import app
from aecli.errors import environment_error

from conftest import photo_like

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(bytes(1000)))
            + _png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def files(tmp_path_factory, model_dir):
    """The inputs, good and bad, in one folder that no test may change."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    PILImage.fromarray(photo_like(48, 64, rng)).save(d / "good.png")
    PILImage.fromarray(photo_like(48, 64, rng)).save(d / "good2.png")
    r = run("compress", d / "good.png", d / "good.lat", "-m", model_dir / "tiny-hp.safetensors")
    assert r.exit_code == 0, r.output
    png, lat = (d / "good.png").read_bytes(), (d / "good.lat").read_bytes()
    for ext in ("png", "lat"):
        (d / f"empty.{ext}").write_bytes(b"")
        (d / f"text.{ext}").write_bytes(b"hello world\n")
        (d / f"adir.{ext}").mkdir()
    (d / "trunc.png").write_bytes(png[: len(png) // 2])
    (d / "trunc.lat").write_bytes(lat[: len(lat) // 2])
    (d / "bomb.png").write_bytes(bomb_png(100_000, 100_000))  # over Pillow's hard limit
    (d / "bomb2.png").write_bytes(bomb_png(10_000, 10_000))  # over Pillow's warning limit and our default one
    good = latformat.unpack(lat)
    (d / "bomb.lat").write_bytes(latformat.pack(dataclasses.replace(good, width=16384, height=16384,
                                                                    streams=(b"", b"", b""))))
    (d / "extra.lat").write_bytes(latformat.pack(dataclasses.replace(good, streams=good.streams + (b"x",))))
    # a trained (tiny) autoencoder for embed, score, reconstruct, sample
    fam = tmp_path_factory.mktemp("fam")
    for i in range(8):
        PILImage.fromarray(rng.integers(0, 255, (16, 16)).astype(np.uint8)).save(fam / f"{i}.png")
    fm = tmp_path_factory.mktemp("fm") / "fm"
    r = run("train", fam, "--model", "vae", "--latent-dim", "2", "--epochs", "1", "--batch-size", "8", "--out", fm,
            "--threads", "1")
    assert r.exit_code == 0, r.output
    return d, fm


def _state(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def check_one_line_error(r, message: str = "") -> str:
    assert r.exit_code not in (0, None), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecli: error: "), r.stderr
    assert "Traceback" not in r.output
    assert message in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def inputs_untouched(files):
    d, fm = files
    before = _state(d), _state(fm)
    yield
    assert (_state(d), _state(fm)) == before, "an input was changed"


# ------------------------------------------------------------------------------------------------
# bad image inputs

IMAGE_CMDS = {
    "compress": lambda i, o, fm, good: ["compress", i, o / "x.lat", "-m", "tiny-hp"],
    "denoise": lambda i, o, fm, good: ["denoise", i, o / "x.png", "-m", "tiny-dn"],
    "noise": lambda i, o, fm, good: ["noise", i, o / "x.png", "--sigma", "5"],
    "compare": lambda i, o, fm, good: ["compare", i, "-m", "tiny-hp"],
    "eval": lambda i, o, fm, good: ["eval", i, "-m", "tiny-hp", "--baselines", "", "--out", o / "ev"],
    "embed": lambda i, o, fm, good: ["embed", i, "-m", fm, "-o", o / "c.csv"],
    "score": lambda i, o, fm, good: ["score", i, "-m", fm, "-o", o / "s.csv"],
    "reconstruct": lambda i, o, fm, good: ["reconstruct", i, "-m", fm, "-o", o / "r.png"],
    "sample": lambda i, o, fm, good: ["sample", "-m", fm, "-o", o / "s.png", "--interpolate", i, good],
    "train": lambda i, o, fm, good: ["train", i, "--model", "dense", "--epochs", "1", "--out", o / "m", "--threads", "1"],
}
BAD_IMAGES = {
    "missing": ("missing.png", ""),
    "empty": ("empty.png", "empty.png"),
    "text": ("text.png", "text.png"),
    "truncated": ("trunc.png", "trunc.png"),
    "directory": ("adir.png", "adir.png"),
    "bomb": ("bomb.png", "bomb.png"),
    "bomb-warning": ("bomb2.png", "bomb2.png"),  # 10^8 pixels: over the default limit of 2^26
}


@pytest.mark.parametrize("bad", list(BAD_IMAGES))
@pytest.mark.parametrize("cmd", list(IMAGE_CMDS))
def test_bad_image_input(files, tmp_path, inputs_untouched, cmd, bad):
    d, fm = files
    name, message = BAD_IMAGES[bad]
    out = tmp_path / "out"
    r = run(*IMAGE_CMDS[cmd](d / name, out, fm, d / "good.png"))
    check_one_line_error(r, message)
    if cmd == "train" and bad == "truncated":
        # aecli/train creates --out (train.log) before it reads the images
        assert not (out / "m" / "checkpoint.pt").exists()
    else:
        assert not out.exists(), sorted(out.rglob("*"))


def test_pixel_limit_follows_the_environment(files, tmp_path, monkeypatch, inputs_untouched):
    d, _ = files
    out = tmp_path / "x.lat"
    line = check_one_line_error(run("compress", d / "bomb2.png", out), "AECLI_MAX_PIXELS")
    assert "10000 x 10000" in line and str(1 << 26) in line
    monkeypatch.setenv("AECLI_MAX_PIXELS", str(10_000 * 10_000))  # allowed now: the header passes, the data is short
    check_one_line_error(run("compress", d / "bomb2.png", out), "not a readable image")
    monkeypatch.setenv("AECLI_MAX_PIXELS", "1000")  # smaller than the good image: refused
    check_one_line_error(run("denoise", d / "good.png", tmp_path / "y.png"), "image too large (64 x 48)")
    monkeypatch.setenv("AECLI_MAX_PIXELS", "lots")
    check_one_line_error(run("compress", d / "good.png", out), "AECLI_MAX_PIXELS")
    assert not out.exists()


def test_codec_training_on_bad_images_is_one_line(files, tmp_path, inputs_untouched):
    d, _ = files
    for name in ("text.png", "trunc.png", "bomb.png"):
        r = run("train", d / name, "--task", "codec", "--channels", "8,12", "--steps", "1", "--batch-size", "1",
                "--patch", "64", "--out", tmp_path / name, "--threads", "1")
        check_one_line_error(r)
        assert not (tmp_path / name / "checkpoint.pt").exists()


# ------------------------------------------------------------------------------------------------
# bad .lat inputs

BAD_LATS = {
    "missing": ("missing.lat", "input not found"),
    "empty": ("empty.lat", "is empty"),
    "text": ("text.lat", "not a .lat file"),
    "truncated": ("trunc.lat", "truncated"),
    "directory": ("adir.lat", "adir.lat"),
    "bomb": ("bomb.lat", "--max-pixels"),
    "extra-stream": ("extra.lat", "4 streams"),
}


@pytest.mark.parametrize("bad", list(BAD_LATS))
@pytest.mark.parametrize("cmd", ["decompress", "info"])
def test_bad_lat_input(files, tmp_path, inputs_untouched, cmd, bad):
    d, _ = files
    name, message = BAD_LATS[bad]
    if cmd == "info" and bad in ("bomb", "extra-stream"):
        pytest.skip("valid containers: info reads the header only")
    args = ["decompress", d / name, tmp_path / "out" / "x.png"] if cmd == "decompress" else ["info", d / name]
    check_one_line_error(run(*args), message)
    assert not (tmp_path / "out").exists()


def test_lat_bomb_policy(files, tmp_path, inputs_untouched, monkeypatch):
    d, _ = files
    bomb, good, out = d / "bomb.lat", d / "good.lat", tmp_path / "x.png"
    msg = check_one_line_error(run("decompress", bomb, out), "decode limit of 67108864 pixels")
    assert "16384x16384" in msg and "AECLI_MAX_PIXELS" in msg
    # the limit counts the padded image at its coding scale: 64x48 is decoded as 64x64 at 8/8,
    # as 128x128 at 11/8 (88x66 padded)
    d_good = latformat.describe(latformat.unpack(good.read_bytes()))
    pw, ph = (-(-d_good[k] // 64) * 64 for k in ("coded_width", "coded_height"))
    assert (pw, ph) == ((64, 64) if d_good["coded_scale"] == 1 else (128, 128))
    check_one_line_error(run("decompress", good, out, "--max-pixels", pw * ph - 1), f"{pw}x{ph} once padded")
    assert not out.exists()
    assert run("decompress", good, out, "--max-pixels", pw * ph).exit_code == 0 and out.exists()
    out.unlink()
    monkeypatch.setenv("AECLI_MAX_PIXELS", str(pw * ph - 1))
    check_one_line_error(run("decompress", good, out), f"decode limit of {pw * ph - 1} pixels")
    assert run("decompress", good, out, "--max-pixels", 0).exit_code == 0  # the option wins; 0: no limit
    out.unlink()
    monkeypatch.setenv("AECLI_MAX_PIXELS", "many")
    check_one_line_error(run("decompress", good, out), "AECLI_MAX_PIXELS")
    check_one_line_error(run("decompress", good, out, "--max-pixels", -1), "--max-pixels")
    monkeypatch.delenv("AECLI_MAX_PIXELS")
    r = run("decompress", "-", "-", input=bomb.read_bytes())
    check_one_line_error(r, "--max-pixels")
    assert r.stdout == ""
    assert not out.exists()


def test_stream_count_must_match_the_mode(files, tmp_path, inputs_untouched):
    d, _ = files
    good = latformat.unpack((d / "good.lat").read_bytes())
    cases = {
        "fewer": (good.streams[:2], "missing streams"),
        "alpha-less RGBA": (good.streams, "missing streams (3, but a RGBA file of model 'tiny-hp' has 4)"),
        "one too many RGBA": (good.streams + (zlib.compress(bytes(64 * 48)), b""), "5 streams"),
    }
    for label, (streams, message) in cases.items():
        mode = "RGBA" if "RGBA" in label else "RGB"
        p = tmp_path / f"{label}.lat"
        p.write_bytes(latformat.pack(dataclasses.replace(good, mode=mode, streams=tuple(streams))))
        check_one_line_error(run("decompress", p, tmp_path / "x.png"), message)
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------------
# bad outputs


def _under_file(d):  # a path below a regular file: no one, not even root, can create it
    return d / "good.png" / "x"


OUTPUT_CMDS = {
    "compress": lambda d, fm, dst: ["compress", d / "good.png", f"{dst}.lat", "-m", "tiny-hp"],
    "decompress": lambda d, fm, dst: ["decompress", d / "good.lat", f"{dst}.png"],
    "denoise": lambda d, fm, dst: ["denoise", d / "good.png", f"{dst}.png", "-m", "tiny-dn"],
    "noise": lambda d, fm, dst: ["noise", d / "good.png", f"{dst}.png", "--sigma", "5"],
    "eval": lambda d, fm, dst: ["eval", d / "good.png", "-m", "tiny-hp", "--baselines", "", "--out", dst],
    "embed": lambda d, fm, dst: ["embed", d / "good.png", "-m", fm, "-o", f"{dst}.csv"],
    "embed --plot": lambda d, fm, dst: ["embed", d / "good.png", "-m", fm, "-o", "-", "--plot", f"{dst}.png"],
    "score": lambda d, fm, dst: ["score", d / "good.png", "-m", fm, "-o", f"{dst}.csv"],
    "reconstruct": lambda d, fm, dst: ["reconstruct", d / "good.png", "-m", fm, "-o", f"{dst}.png"],
    "sample": lambda d, fm, dst: ["sample", "-m", fm, "-o", f"{dst}.png"],
    "train": lambda d, fm, dst: ["train", d / "good.png", "--model", "dense", "--epochs", "1", "--out", dst,
                                 "--threads", "1"],
}


@pytest.mark.parametrize("where", ["under-a-file", "proc", "a-directory"])
@pytest.mark.parametrize("cmd", list(OUTPUT_CMDS))
def test_unwritable_output(files, tmp_path, inputs_untouched, cmd, where):
    d, fm = files
    if where == "under-a-file":
        dst = _under_file(d)
    elif where == "proc":
        dst = Path("/proc/aecli-test")
    else:  # an existing directory where a file is expected
        if cmd in ("eval", "train"):
            pytest.skip("their output is a folder")
        target = tmp_path / "taken"
        argv = OUTPUT_CMDS[cmd](d, fm, target)
        Path(next(str(a) for a in argv if str(a).startswith(str(target)))).mkdir()
        check_one_line_error(run(*argv))
        return
    if cmd == "eval" and where == "under-a-file":
        dst = d / "good.png"  # --out is an existing file
    check_one_line_error(run(*OUTPUT_CMDS[cmd](d, fm, dst)))


SAME = {
    "compress": lambda d, fm: ["compress", d / "good.png", d / "good.png", "-m", "tiny-hp"],
    "decompress": lambda d, fm: ["decompress", d / "good.lat", d / "good.lat", "--format", "png"],
    "denoise": lambda d, fm: ["denoise", d / "good.png", d / "good.png", "-m", "tiny-dn"],
    "noise": lambda d, fm: ["noise", d / "good.png", d / "good.png", "--sigma", "5"],
    "embed --plot": lambda d, fm: ["embed", d / "good.png", "-m", fm, "-o", "-", "--plot", d / "good.png"],
    "reconstruct": lambda d, fm: ["reconstruct", d / "good.png", "-m", fm, "-o", d / "good.png"],
    "sample": lambda d, fm: ["sample", "-m", fm, "-o", d / "good.png", "--interpolate", d / "good.png", d / "good2.png"],
}


@pytest.mark.parametrize("cmd", list(SAME))
def test_output_is_the_input(files, inputs_untouched, cmd):
    d, fm = files
    check_one_line_error(run(*SAME[cmd](d, fm)), "same file as the input")


def test_models_path_must_be_a_folder(files, inputs_untouched):
    d, _ = files
    check_one_line_error(run("models", "--path", d / "missing"), "not found")
    check_one_line_error(run("models", "--path", d / "good.png"), "not a folder")
    assert run("models", "--path", d / "adir.png").exit_code == 0  # an empty folder is fine


def test_eval_published_must_exist(files, tmp_path, inputs_untouched):
    d, _ = files
    for published, message in ((d / "missing.json", "not found"), (d / "text.png", "cannot read")):
        r = run("eval", d / "good.png", "-m", "tiny-hp", "--baselines", "", "--out", tmp_path / "ev",
                "--published", published)
        check_one_line_error(r, message)
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("cmd,data,message", [
    ("compress", b"", "<stdin> is empty"),
    ("compress", b"hello", "not a readable image"),
    ("denoise", b"\x89PNG\r\n", "not a readable image"),
    ("decompress", b"AEL\x01", "truncated"),
])
def test_bad_stdin(inputs_untouched, cmd, data, message):
    r = run(cmd, "-", "-", *(["-m", "tiny-hp"] if cmd == "compress" else ["-m", "tiny-dn"] if cmd == "denoise" else []),
            input=data)
    check_one_line_error(r, message)
    assert r.stdout == ""


# ------------------------------------------------------------------------------------------------
# folder batches: report the bad files, do the rest, exit non-zero

BATCHES = {
    "compress": (lambda b, lb, o, fm: ["compress", b, o, "-m", "tiny-hp"], "a.lat"),
    "decompress": (lambda b, lb, o, fm: ["decompress", lb, o], "a.png"),
    "denoise": (lambda b, lb, o, fm: ["denoise", b, o, "-m", "tiny-dn"], "a.png"),
    "noise": (lambda b, lb, o, fm: ["noise", b, o, "--sigma", "5"], "a.png"),
    "compare": (lambda b, lb, o, fm: ["compare", b, "-m", "tiny-hp", "--json"], None),
    "eval": (lambda b, lb, o, fm: ["eval", b, "-m", "tiny-hp", "--baselines", "", "--out", o], "rd.json"),
    "embed": (lambda b, lb, o, fm: ["embed", b, "-m", fm, "-o", o / "c.csv"], "c.csv"),
    "score": (lambda b, lb, o, fm: ["score", b, "-m", fm, "-o", o / "s.csv"], "s.csv"),
    "reconstruct": (lambda b, lb, o, fm: ["reconstruct", b, "-m", fm, "-o", o / "r.png"], "r.png"),
}


@pytest.fixture(scope="module")
def batch_dirs(files, tmp_path_factory):
    d, _ = files
    b, lb = tmp_path_factory.mktemp("batch"), tmp_path_factory.mktemp("latbatch")
    shutil.copy(d / "good.png", b / "a.png")
    for f in ("empty.png", "text.png", "trunc.png", "bomb.png"):
        shutil.copy(d / f, b / f)
    shutil.copy(d / "good.lat", lb / "a.lat")
    for f in ("empty.lat", "text.lat", "trunc.lat", "bomb.lat", "extra.lat"):
        shutil.copy(d / f, lb / f)
    return b, lb


@pytest.mark.parametrize("cmd", list(BATCHES))
def test_batch_goes_on_after_bad_files(files, batch_dirs, tmp_path, cmd):
    _, fm = files
    b, lb = batch_dirs
    make, good_out = BATCHES[cmd]
    out = tmp_path / "out"
    r = run(*make(b, lb, out, fm))
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    src = lb if cmd == "decompress" else b
    bad = sorted(p.name for p in src.iterdir() if not p.name.startswith("a."))
    for name in bad:
        lines = [x for x in r.stderr.splitlines() if name in x]
        assert len(lines) == 1 and lines[0].startswith("aecli: "), (name, r.stderr)
    if good_out:
        assert (out / good_out).exists()
        made = sorted(p.name for p in out.rglob("*") if p.is_file())
        assert not any(Path(n).stem in {Path(x).stem for x in bad} for n in made), made
    else:
        assert '"image": "a.png"' in r.stdout


# ------------------------------------------------------------------------------------------------


def test_environment_error_is_one_line():
    e = environment_error(NotADirectoryError(20, "Not a directory", "/x/y"))
    assert e == "/x/y: Not a directory"
    assert environment_error(OSError("image file is truncated\nmore")) == "image file is truncated"
    from PIL import Image

    assert environment_error(Image.DecompressionBombError("Image size (1 pixels) exceeds")).startswith("image too large")
    assert environment_error(ValueError("a bug")) is None


def test_real_process_prints_no_traceback(files, tmp_path):
    """The lat bomb and an output below a file, through a real interpreter."""
    d, _ = files
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AECLI_MAX_PIXELS", None)
    r = subprocess.run([sys.executable, "-m", "aecli", "decompress", d / "bomb.lat", tmp_path / "x.png"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("aecli: error: ") and "--max-pixels" in r.stderr, r.stderr
    assert not (tmp_path / "x.png").exists()
