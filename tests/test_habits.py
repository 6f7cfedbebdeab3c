"""The habits of image tools (issue 23): -o everywhere, -q/-Q, --version, shell completion,
-v, help text, lossless outputs by default, --max-bytes that cannot be met, info --json's one
shape, models' defaults, animated GIFs, the reconstruct grid, and start-up without torch where
nothing is to be done."""

from __future__ import annotations

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
from aecli.cli import app, command

from conftest import photo_like

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def help_of(*args, capsys) -> str:
    with pytest.raises(SystemExit):
        command().main(args=[*args, "--help"], prog_name="aecli")
    return capsys.readouterr().out


@pytest.fixture
def photo(tmp_path, rng):
    path = tmp_path / "photo.png"
    PILImage.fromarray(photo_like(40, 56, rng)).save(path)
    return path


def test_dash_o_everywhere(tmp_path, photo):
    lat, back, clean, noisy = (tmp_path / n for n in ("a.lat", "b.png", "c.png", "n.png"))
    assert run("compress", photo, "-o", lat, "-m", "tiny-hp").exit_code == 0 and lat.exists()
    assert run("decompress", lat, "--output", back).exit_code == 0 and back.exists()
    assert run("noise", photo, "-o", noisy, "--sigma", "10").exit_code == 0 and noisy.exists()
    assert run("denoise", noisy, "-o", clean, "-m", "tiny-dn", "--sigma", "10").exit_code == 0 and clean.exists()
    r = run("compress", photo, tmp_path / "x.lat", "-o", tmp_path / "y.lat", "-m", "tiny-hp")
    assert r.exit_code == 1 and "two outputs" in r.stderr
    r = run("noise", photo, "--sigma", "1")
    assert r.exit_code == 1 and "-o FILE" in r.stderr


def test_quality_is_big_q_and_small_q_mistake_is_explained(tmp_path, photo):
    r = run("compress", "-q", "9", photo)
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and "-Q 9" in r.stderr and "--quiet" in r.stderr
    r = run("compress", photo, "-o", tmp_path / "q.lat", "-Q", "3", "-m", "tiny-hp")
    assert r.exit_code == 0 and latformat.unpack((tmp_path / "q.lat").read_bytes()).quality == 3


def test_effort_levels_are_checked_without_torch_and_match_the_encoder():
    from aecli.codec import files, refine

    assert files.EFFORT_LEVELS == tuple(sorted(refine.EFFORTS))
    r = run("compress", "x.png", "-e", "7")
    assert r.exit_code == 1 and "--effort must be one of 0, 1, 2, 3" in r.stderr


def test_version(capsys):
    from aecli import __version__

    r = run("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"aecli {__version__}"
    assert run("-V").stdout == r.stdout


def test_shell_completion():
    code = "import sys; sys.argv = ['aecli']; from aecli.cli import main; main()"
    src = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(_AECLI_COMPLETE="bash_source"))
    assert src.returncode == 0 and "complete" in src.stdout and "_AECLI_COMPLETE" in src.stdout, src.stderr
    words = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=_env(_AECLI_COMPLETE="bash_complete", COMP_WORDS="aecli decomp", COMP_CWORD="1"))
    assert "decompress" in words.stdout, words.stderr


def test_help_text_reads_like_an_image_tool(capsys):
    top = help_of(capsys=capsys)
    for line in top.splitlines()[1:]:  # every command's first sentence, whole
        assert not line.rstrip().endswith("..."), line
    assert "Show what a .lat file holds: model, quality, size, bpp, metadata, integrity." in " ".join(top.split())
    comp = help_of("compress", capsys=capsys)
    assert "Usage: aecli compress [OPTIONS] INPUT [OUTPUT]" in comp
    for bad in ("{input}", "<str>", "<int>", "<float>", "<list[str]>"):
        assert bad not in comp
    assert "-Q, --quality N" in comp and "-o, --output TEXT" in comp
    assert "INPUTS..." in help_of("info", capsys=capsys)
    cmp_help = " ".join(help_of("compare", capsys=capsys).split())
    assert "-m, --model TEXT Codec model name or path" in cmp_help
    assert "99th percentile" in " ".join(help_of("score", capsys=capsys).split())
    assert "-m, --model" in help_of("train", capsys=capsys)


def test_verbose_says_what_takes_the_time(tmp_path, photo):
    r = run("compress", photo, "-o", tmp_path / "v.lat", "-m", "tiny-hp", "-v")
    assert r.exit_code == 0 and "loaded in" in r.stderr and "coded in" in r.stderr
    r = run("decompress", tmp_path / "v.lat", "-o", tmp_path / "v.png", "--verbose")
    assert r.exit_code == 0 and "decoded in" in r.stderr
    r = run("compress", photo, "-o", tmp_path / "w.lat", "-m", "tiny-hp")
    assert "loaded in" not in r.stderr


def test_outputs_are_lossless_unless_asked(tmp_path, photo):
    lat = tmp_path / "p.lat"
    run("compress", photo, "-o", lat, "-m", "tiny-hp")
    run("decompress", lat, "-o", tmp_path / "ref.png")
    ref = np.asarray(PILImage.open(tmp_path / "ref.png"))
    for ext in ("webp", "tiff"):
        run("decompress", lat, "-o", tmp_path / f"l.{ext}")
        assert np.array_equal(np.asarray(PILImage.open(tmp_path / f"l.{ext}").convert("RGB")), ref), ext
    r = run("decompress", lat, "-o", tmp_path / "q.webp", "--output-quality", "30")
    assert r.exit_code == 0
    assert not np.array_equal(np.asarray(PILImage.open(tmp_path / "q.webp").convert("RGB")), ref)
    assert (tmp_path / "q.webp").stat().st_size < (tmp_path / "l.webp").stat().st_size
    run("decompress", lat, "-o", tmp_path / "d.jpg")
    run("decompress", lat, "-o", tmp_path / "e.jpg", "--output-quality", "20")
    assert (tmp_path / "e.jpg").stat().st_size < (tmp_path / "d.jpg").stat().st_size  # default 95
    assert run("decompress", lat, "-o", tmp_path / "z.jpg", "--output-quality", "0").exit_code != 0
    r = run("denoise", photo, "-o", tmp_path / "dn.webp", "-m", "tiny-dn", "--sigma", "5")
    assert r.exit_code == 0
    run("denoise", photo, "-o", tmp_path / "dn.png", "-m", "tiny-dn", "--sigma", "5")
    assert np.array_equal(np.asarray(PILImage.open(tmp_path / "dn.webp").convert("RGB")),
                          np.asarray(PILImage.open(tmp_path / "dn.png").convert("RGB")))


def test_a_size_that_cannot_be_met_fails_unless_nearest(tmp_path, photo):
    out = tmp_path / "s.lat"
    r = run("compress", photo, "-o", out, "-m", "tiny-hp", "--max-bytes", "20")
    assert r.exit_code == 1 and not out.exists()
    assert r.stderr.count("\n") == 1 and "no quality fits --max-bytes 20" in r.stderr and "--nearest" in r.stderr
    r = run("compress", photo, "-o", out, "-m", "tiny-hp", "--target-bpp", "0.001")
    assert r.exit_code == 1 and "--target-bpp 0.001" in r.stderr
    r = run("compress", photo, "-o", out, "-m", "tiny-hp", "--max-bytes", "20", "--nearest")
    assert r.exit_code == 0 and out.exists() and "warning" in r.stderr
    assert latformat.unpack(out.read_bytes()).quality == 1
    big = out.stat().st_size * 4
    r = run("compress", photo, "-o", tmp_path / "t.lat", "-m", "tiny-hp", "--max-bytes", big)
    assert r.exit_code == 0 and (tmp_path / "t.lat").stat().st_size <= big


def test_spinner_only_on_a_terminal(capsys):
    from aecli.progress import spinner

    with spinner("searching", enabled=False):
        pass
    with spinner("searching"):  # stderr is not a terminal under pytest
        pass
    assert capsys.readouterr().err == ""


def test_info_json_is_a_list_for_one_file_and_for_many(tmp_path, photo):
    run("compress", photo, "-o", tmp_path / "a.lat", "-m", "tiny-hp")
    one = json.loads(run("info", tmp_path / "a.lat", "--json").stdout)
    two = json.loads(run("info", tmp_path / "a.lat", tmp_path / "a.lat", "--json").stdout)
    assert isinstance(one, list) and len(one) == 1 and len(two) == 2 and one[0] == two[0]
    assert one[0]["metadata"] == {}


def test_models_marks_the_defaults():
    r = run("models")
    lines = r.stdout.splitlines()
    hpc = [x for x in lines if x.startswith("* hpc ")]
    assert len(hpc) == 1 and "(*8)" in hpc[0] and "default of compress" in hpc[0]
    assert any(x.startswith("* dn ") for x in lines) and lines[-1].startswith("* default model")
    rows = {m["name"]: m for m in json.loads(run("models", "--json").stdout) if not m["decode_only"]}
    assert "compress" in rows["hpc"]["default_for"] and rows["hp"]["default_for"] == []


def test_animated_gif_says_only_the_first_frame_is_coded(tmp_path, rng):
    frames = [PILImage.fromarray(photo_like(16, 16, rng)) for _ in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=50, loop=0)
    r = run("compress", gif, "-o", tmp_path / "g.lat", "-m", "tiny-hp")
    assert r.exit_code == 0
    warnings = [x for x in r.stderr.splitlines() if "warning" in x]
    assert len(warnings) == 1 and "3 frames" in warnings[0] and "only the first" in warnings[0]
    r = run("compress", tmp_path / "g.lat", "-o", tmp_path / "h.lat", "-m", "tiny-hp")  # (not an image: an error)
    PILImage.fromarray(photo_like(16, 16, rng)).save(tmp_path / "still.gif")
    r = run("compress", tmp_path / "still.gif", "-o", tmp_path / "s.lat", "-m", "tiny-hp")
    assert r.exit_code == 0 and "warning" not in r.stderr


def test_reconstruct_grid_of_five_has_no_blank_columns(tmp_path, rng):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(5):
        PILImage.fromarray(photo_like(28, 28, rng, channels=1)).save(d / f"{i}.png")
    r = run("reconstruct", d, "-o", tmp_path / "grid.png")
    assert r.exit_code == 0, r.output
    with PILImage.open(tmp_path / "grid.png") as im:
        w, h = im.size
    cell = 28 * 2 + 2  # 28x28 shown at twice the size, 2-pixel gutters
    assert (w, h) == (5 * cell + 2, 2 * cell + 2)


def test_a_finished_folder_is_skipped_without_torch(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        PILImage.fromarray(photo_like(16, 16, rng)).save(src / f"{i}.png")
    assert run("compress", src, tmp_path / "out", "-m", "tiny-hp").exit_code == 0
    code = ("import sys\nfrom aecli.cli import app\n"
            "try:\n    app(['compress', sys.argv[1], sys.argv[2], '-m', 'tiny-hp'])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out")], capture_output=True, text=True,
                       env=_env())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert "skipped 2" in r.stderr
