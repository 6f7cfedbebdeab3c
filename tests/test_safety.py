"""Safe by default (issue 21): no command replaces what it should not, finds a model it was not asked
for, loses bytes on the way out, or ends in a traceback on a bad model, checkpoint or option."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli import atomic, registry
from aecli import format as latformat
from aecli.cli import app
from aecli.errors import UserError

from conftest import make_training_images, photo_like, run_together

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_line_error(r, *needles: str, log: bool = False) -> str:
    """The result is exit 1 with one 'aecli: error:' line holding every needle, and no traceback
    (`log`: training's progress lines may come before it)."""
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    if log:
        assert lines and lines[-1].startswith("aecli: error:"), r.stderr
        lines = [x for x in lines if x.startswith(("aecli:", "Traceback", "  "))]
    assert len(lines) == 1 and lines[0].startswith("aecli: error:"), r.stderr
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _env(**extra) -> dict:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


CMD = [sys.executable, "-m", "aecli"]


@pytest.fixture
def photo(tmp_path, rng):
    p = tmp_path / "photo.png"
    PILImage.fromarray(photo_like(48, 64, rng)).save(p)
    return p


@pytest.fixture
def lat(tmp_path, photo):
    out = tmp_path / "k.lat"
    assert run("compress", photo, out, "-m", "tiny-hp", "--scale", "1").exit_code == 0
    return out


# ---------------------------------------------------------------- 1. devices, FIFOs, /dev/stdout, /dev/fd/N


@pytest.mark.skipif(not hasattr(os, "mknod"), reason="POSIX device nodes")
def test_character_device_is_written_into_never_replaced(tmp_path, lat):
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("creating a device node needs root")
    for args in (("decompress", lat, node), ("compress", tmp_path / "photo.png", node, "-m", "tiny-hp", "--scale", "1")):
        r = run(*args)
        assert r.exit_code == 0, r.output
        assert stat.S_ISCHR(os.lstat(node).st_mode), "the device node was replaced by a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.lat", "null", "photo.png"]  # no temporary file left


@pytest.mark.skipif(not hasattr(os, "mknod"), reason="POSIX device nodes")
def test_block_device_is_refused(tmp_path, lat):
    node = tmp_path / "disk"
    try:
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    one_line_error(run("decompress", lat, node, "--force"), "block device", "only regular files are replaced")
    assert stat.S_ISBLK(os.lstat(node).st_mode)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_is_written_into(tmp_path, lat):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = run("decompress", lat, fifo)
    reader.join(30)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and got[0].startswith(b"\x89PNG")
    assert PILImage.open(io.BytesIO(got[0])).size == (64, 48)


def test_dev_stdout_and_dev_fd_are_outputs(tmp_path, lat):
    with ThreadPoolExecutor(1) as pool:  # the two processes side by side (conftest.run_together)
        to_stdout = pool.submit(subprocess.run, CMD + ["decompress", str(lat), "/dev/stdout"], capture_output=True, env=_env())
        data = _decompress_to_dev_fd(lat)
        r = to_stdout.result()
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"\x89PNG")
    assert data.startswith(b"\x89PNG")
    assert not list(Path("/dev/fd").glob("*.tmp"))


def _decompress_to_dev_fd(lat) -> bytes:
    """What `aecli decompress k.lat >(cat > x.png)` (process substitution: /dev/fd/N) writes."""
    rd, wr = os.pipe()
    try:
        p = subprocess.Popen(CMD + ["decompress", str(lat), f"/dev/fd/{wr}"], pass_fds=(wr,), env=_env(),
                             stderr=subprocess.PIPE)
        os.close(wr)
        with os.fdopen(rd, "rb") as f:
            data = f.read()
        assert p.wait(60) == 0, p.stderr.read()
    finally:
        for fd in (rd, wr):
            try:
                os.close(fd)
            except OSError:
                pass
    return data


# ---------------------------------------------------------------- 2. what is never overwritten


def test_round_trip_with_default_names_keeps_the_original(tmp_path, photo):
    original = photo.read_bytes()
    assert run("compress", photo, "-m", "tiny-hp", "--scale", "1").exit_code == 0  # -> photo.lat
    r = run("decompress", tmp_path / "photo.lat")
    assert r.exit_code == 0, r.output
    assert photo.read_bytes() == original
    decoded = tmp_path / "photo.decoded.png"
    assert decoded.exists() and PILImage.open(decoded).size == (64, 48)
    # a default name that exists is not replaced without --force, and the message says how
    before = decoded.read_bytes()
    one_line_error(run("decompress", tmp_path / "photo.lat"), "photo.decoded.png already exists",
                   "default output name", "--force")
    one_line_error(run("compress", photo, "-m", "tiny-hp"), "photo.lat already exists", "--force")
    assert decoded.read_bytes() == before
    assert run("decompress", tmp_path / "photo.lat", "--force").exit_code == 0


def test_existing_named_output_needs_force(tmp_path, photo, lat):
    precious = tmp_path / "precious.png"
    shutil.copy(photo, precious)
    one_line_error(run("decompress", lat, precious), "already exists", "--force")
    assert precious.read_bytes() == photo.read_bytes()
    other = tmp_path / "other.lat"
    other.write_bytes(b"keep me")
    one_line_error(run("compress", photo, other, "-m", "tiny-hp"), "already exists")
    assert other.read_bytes() == b"keep me"
    r = run("compress", photo, other, "-m", "tiny-hp", "--scale", "1", "--force")
    assert r.exit_code == 0 and latformat.unpack(other.read_bytes()).model == "tiny-hp"
    noisy = tmp_path / "noisy.png"
    noisy.write_bytes(b"keep")
    one_line_error(run("noise", photo, noisy, "--sigma", "5"), "already exists")
    assert noisy.read_bytes() == b"keep"


def test_lat_bytes_never_go_to_an_image_name_nor_an_image_to_a_lat_name(tmp_path, photo, lat):
    precious = tmp_path / "precious.png"
    shutil.copy(photo, precious)
    for args in (("compress", photo, precious), ("compress", photo, precious, "--force"),
                 ("compress", photo, tmp_path / "new.jpg")):
        one_line_error(run(*args, "-m", "tiny-hp"), "image extension", ".lat")
    assert precious.read_bytes() == photo.read_bytes() and not (tmp_path / "new.jpg").exists()
    one_line_error(run("decompress", lat, tmp_path / "x.lat", "--format", "png"), ".lat extension")
    assert not (tmp_path / "x.lat").exists()


# ---------------------------------------------------------------- 3. model lookup


def _tiny_codec(folder: Path, name: str, seed: int = 77) -> Path:
    from conftest import make_tiny_codec

    return make_tiny_codec("hyperprior", name, folder, seed=seed).weights


def test_default_model_is_never_taken_from_the_current_folder(tmp_path, photo, monkeypatch):
    _tiny_codec(tmp_path, "hpc")  # ./hpc.safetensors + ./hpc.json, named like the bundled model
    (tmp_path / "hpc").mkdir()
    shutil.copy(tmp_path / "hpc.safetensors", tmp_path / "hpc" / "hpc.safetensors")
    shutil.copy(tmp_path / "hpc.json", tmp_path / "hpc" / "hpc.json")
    (tmp_path / "dn").mkdir()
    monkeypatch.chdir(tmp_path)
    bundled = {m.name: m for m in registry.bundled()}
    for task, name in (("codec", "hpc"), ("denoise", "dn")):
        for spec in (None, name):
            assert registry.resolve(spec, task).weights == bundled[name].weights
    # a path is a path
    assert registry.resolve("./hpc", "codec").weights.resolve() == (tmp_path / "hpc" / "hpc.safetensors").resolve()
    r = run("compress", "photo.png", "x.lat", "--scale", "1", "-Q", "1")
    assert r.exit_code == 0, r.output
    assert latformat.unpack((tmp_path / "x.lat").read_bytes()).fingerprint.hex() == bundled["hpc"].meta["fingerprint"]
    # a bare name that is only a folder here says how to use the folder
    shutil.move(tmp_path / "hpc", tmp_path / "mine")
    one_line_error(run("compress", "photo.png", "y.lat", "-m", "mine"), "model 'mine' not found", "--model ./mine")
    assert run("compress", "photo.png", "y.lat", "-m", "./mine", "--scale", "1").exit_code == 0


# ---------------------------------------------------------------- 4. short writes to stdout


def test_full_stdout_is_a_one_line_error(tmp_path, lat, photo):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    cases = ((["decompress", str(lat), "-"], None), (["compress", "-", "-", "-m", "tiny-hp"], photo.read_bytes()))
    with open("/dev/full", "wb") as full:
        results = run_together(*[(CMD + args, dict(input=stdin, stdout=full, stderr=subprocess.PIPE, env=_env()))
                                 for args, stdin in cases])
    for r in results:
        err = r.stderr.decode().strip().splitlines()
        assert r.returncode == 1 and len(err) == 1, r.stderr
        assert err[0] == "aecli: error: cannot write <stdout>: No space left on device"


def test_partial_writes_are_completed_and_no_progress_is_an_error(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def short(fd, data):  # at most 7 bytes a call, as a pipe or a signal may cut a write
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(atomic.os, "write", short)
    data = bytes(range(256)) * 10
    out = open(tmp_path / "out", "w")
    monkeypatch.setattr(sys, "stdout", out)
    atomic.write_output("-", data)
    out.close()
    assert (tmp_path / "out").read_bytes() == data and len(calls) == -(-len(data) // 7)
    monkeypatch.setattr(atomic.os, "write", lambda fd, data: 0)
    monkeypatch.setattr(sys, "stdout", open(tmp_path / "out2", "w"))
    with pytest.raises(UserError, match=r"cannot write <stdout>: short write \(0 of 2560 bytes"):
        atomic.write_output("-", data)

    class Stream:  # a stream without a descriptor whose write() reports partial counts
        def __init__(self):
            self.got = bytearray()

        def write(self, b):
            self.got += bytes(b[:5])
            return min(5, len(b))

        def flush(self):
            pass

    s = Stream()
    monkeypatch.setattr(sys, "stdout", s)
    atomic.write_output("-", data)
    assert bytes(s.got) == data


# ---------------------------------------------------------------- 5. model names that .lat files cannot hold


def test_model_trained_into_any_folder_name_is_usable(tmp_path, rng, photo):
    imgs = make_training_images(tmp_path / "imgs", rng)
    out = tmp_path / "runs" / ("my modèle " + "x" * 70)
    r = run("train", imgs, "--out", out, "--steps", "1", "--channels", "8,12", "--patch", "64", "--batch-size", "2",
            "--holdout", "1", "--val-every", "100", "--threads", "1", "--quality", "4")
    assert r.exit_code == 0, r.output
    name = "my-modele-" + "x" * 54
    assert latformat.valid_name(name) and (out / f"{name}.safetensors").exists()
    assert f"exported as '{name}'" in (out / "train.log").read_text()
    r = run("compress", photo, tmp_path / "a.lat", "--model", out, "--scale", "1")
    assert r.exit_code == 0, r.output
    assert latformat.unpack((tmp_path / "a.lat").read_bytes()).model == name
    assert run("decompress", tmp_path / "a.lat", tmp_path / "a.png", "--model", out).exit_code == 0


def test_a_model_whose_name_files_cannot_hold_is_a_one_line_error(tmp_path, model_dir, photo):
    meta = json.loads((model_dir / "tiny-hp.json").read_text())
    shutil.copy(model_dir / "tiny-hp.safetensors", tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text(json.dumps(dict(meta, name="my model")))
    one_line_error(run("compress", photo, tmp_path / "x.lat", "-m", tmp_path / "m"),
                   "cannot be written into .lat files", "'my-model'")


# ---------------------------------------------------------------- 6. a broken user model breaks only itself


@pytest.mark.parametrize("text", ["[1, 2, 3]", "[" * 100_000 + "]" * 100_000, '"just a string"', "{not json",
                                  '{"name": "broken", "task": "codec", "training": [1]}'],
                         ids=["list", "nested 100000 deep", "string", "not json", "wrong types"])
def test_a_broken_user_model_is_skipped_with_a_warning(tmp_path, model_dir, lat, monkeypatch, text):
    user = tmp_path / "user-models"
    user.mkdir()
    shutil.copy(model_dir / "tiny-fp.safetensors", user / "broken.safetensors")
    (user / "broken.json").write_text(text)
    monkeypatch.setenv("AECLI_MODEL_PATH", os.pathsep.join([str(user), str(model_dir)]))
    monkeypatch.setattr(registry, "_warned", set())
    monkeypatch.setattr(registry, "skipped", {})
    r = run("models")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("aecli: warning: skipping model")]
    assert len(warnings) == 1 and "broken.safetensors" in warnings[0], r.stderr
    assert "tiny-hp" in r.stdout and "Traceback" not in r.output
    r = run("decompress", lat, tmp_path / "back.png")  # a file of another model still decodes
    assert r.exit_code == 0, r.output
    one_line_error(run("compress", tmp_path / "photo.png", tmp_path / "b.lat", "-m", "broken"),
                   "model 'broken' cannot be used", "broken.json")


def test_a_dangling_model_link_does_not_break_the_listing(tmp_path, model_dir, monkeypatch):
    user = tmp_path / "user-models"
    user.mkdir()
    (user / "gone.safetensors").symlink_to(tmp_path / "nowhere.safetensors")
    shutil.copy(model_dir / "tiny-fp.json", user / "gone.json")
    monkeypatch.setenv("AECLI_MODEL_PATH", os.pathsep.join([str(user), str(model_dir)]))
    r = run("models", "--json")
    assert r.exit_code == 0, r.output
    assert {m["name"]: m["bytes"] for m in json.loads(r.stdout)}["tiny-hp"] > 0


def test_a_null_fingerprint_does_not_break_the_listing(tmp_path, model_dir, monkeypatch):
    """Found by the model fuzzer: a denoiser whose JSON has "fingerprint": null broke `aecli models`."""
    user = tmp_path / "user-models"
    _model_copy(model_dir, user, lambda m: dict(m, fingerprint=None), name="tiny-dn")
    monkeypatch.setenv("AECLI_MODEL_PATH", os.pathsep.join([str(user), str(model_dir)]))
    r = run("models")
    assert r.exit_code == 0 and "tiny-dn" in r.stdout, r.output


# ---------------------------------------------------------------- 7. bad model files and options: one line


def _model_copy(model_dir: Path, where: Path, edit=None, name: str = "tiny-hp") -> Path:
    """A copy of a test model in `where` (as m.safetensors + m.json), its JSON passed through edit(meta)."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_dir / f"{name}.safetensors", where / "m.safetensors")
    meta = json.loads((model_dir / f"{name}.json").read_text())
    text = edit(meta) if edit else json.dumps(meta)
    (where / "m.json").write_text(text if isinstance(text, str) else json.dumps(text))
    return where / "m"


def _without(key):
    return lambda m: {k: v for k, v in m.items() if k != key}


def _arch(**changes):
    return lambda m: dict(m, architecture=dict(m["architecture"], **changes))


BAD_META = {
    "no fingerprint": (_without("fingerprint"), "fingerprint"),
    "no architecture": (_without("architecture"), "architecture"),
    "no qualities": (_without("qualities"), "qualities"),
    "empty qualities": (lambda m: dict(m, qualities=[], default_quality=None) | {"default_quality": 1}, "qualities"),
    "unknown kind": (_arch(kind="transformer"), "unknown codec kind"),
    "name not a string": (lambda m: dict(m, name=42), '"name" must be a non-empty string'),
    "1e400": (lambda m: json.dumps(m).replace('"n": 8', '"n": 1e400'), "n must be an integer"),
    "negative n": (_arch(n=-8), "n must be an integer"),
    "huge n": (_arch(n=4096, m=4096), "holds"),  # 300 GB of weights claimed: refused before allocating
    "huge m": (_arch(m=10 ** 9), "m must be an integer"),
    "bad fingerprint": (lambda m: dict(m, fingerprint="xyz"), "fingerprint"),
    "bad default quality": (lambda m: dict(m, default_quality="best"), "default_quality"),
    "lambdas": (_arch(lambdas=["a"]), "lambdas"),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_bad_model_json_is_a_one_line_error(tmp_path, model_dir, photo, case):
    edit, needle = BAD_META[case]
    spec = _model_copy(model_dir, tmp_path / "m", edit)
    one_line_error(run("compress", photo, tmp_path / "x.lat", "-m", spec), needle)
    assert not (tmp_path / "x.lat").exists()


@pytest.mark.parametrize("case", ["denoiser widths", "denoiser blocks", "autoencoder shape", "autoencoder hidden",
                                  "autoencoder threshold"])
def test_bad_denoiser_and_autoencoder_json_is_a_one_line_error(tmp_path, model_dir, photo, case):
    if case.startswith("denoiser"):
        arch = {"widths": [8, 10**9]} if case.endswith("widths") else {"blocks": 1e400}
        spec = _model_copy(model_dir, tmp_path / "d", _arch(**arch), name="tiny-dn")
        r = run("denoise", photo, tmp_path / "x.png", "-m", spec)
    else:
        fae = {m.name: m for m in registry.bundled()}["fashion-ae"].weights
        edit = {"autoencoder shape": _arch(shape=[1, 10**6, 10**6]), "autoencoder hidden": _arch(hidden=[-1]),
                "autoencoder threshold": lambda m: dict(m, anomaly=dict(m["anomaly"], threshold="high"))}[case]
        spec = _model_copy(fae.parent, tmp_path / "a", edit, name="fashion-ae")
        r = run("reconstruct", photo, "-o", tmp_path / "x.png", "-m", spec)
    one_line_error(r, "model '", "bad metadata" if case.startswith("autoencoder") else "architecture")  # before building
    assert not (tmp_path / "x.png").exists()


def _edit_weights(src: Path, dst: Path, change) -> None:
    """Copy a model with its tensors changed by change(tensors) and its fingerprint made to match."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(src.with_suffix(".safetensors")))
    change(tensors)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst.with_suffix(".safetensors")))
    meta = json.loads(src.with_suffix(".json").read_text())
    meta["fingerprint"] = registry.fingerprint_of(dst.with_suffix(".safetensors"))
    dst.with_suffix(".json").write_text(json.dumps(meta))


@pytest.mark.parametrize("model", ["tiny-hp", "tiny-fp", "tiny-cb"])
def test_huge_finite_weights_still_give_a_file(tmp_path, model_dir, photo, model):
    """Found by the model fuzzer: latents of 1e30 were clamped in float32 to 2**30 - 1, which rounds to
    2**30, past the escape range, and the encoder raised ValueError."""
    def change(t):
        t["g_a.6.weight"] *= 1e30

    _edit_weights(model_dir / model, tmp_path / "w" / "m", change)
    r = run("compress", photo, tmp_path / "x.lat", "-m", tmp_path / "w" / "m", "--scale", "1")
    assert r.exit_code == 0 or r.stderr.startswith("aecli: error:"), r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("case", ["zero table", "nan weight", "table count", "int layer shape", "dtype"])
def test_bad_model_weights_are_a_one_line_error(tmp_path, model_dir, photo, case):
    import torch

    def change(t):
        if case == "zero table":
            t["tables.y.pmf"] = torch.zeros_like(t["tables.y.pmf"])
        elif case == "nan weight":
            t["g_a.0.weight"][0, 0, 0, 0] = float("nan")
        elif case == "table count":
            t["tables.z.len"] = t["tables.z.len"][:-1]
        elif case == "int layer shape":
            t["int.h_s.0.weight"] = t["int.h_s.0.weight"][:, :1].contiguous()
        else:
            t["tables.y.pmf"] = t["tables.y.pmf"].float()

    _edit_weights(model_dir / "tiny-hp", tmp_path / "w" / "m", change)
    one_line_error(run("compress", photo, tmp_path / "x.lat", "-m", tmp_path / "w" / "m"), "model 'tiny-hp'")


@pytest.mark.parametrize("args, needle", [
    (["--target-bpp", "nan"], "--target-bpp"), (["--target-bpp", "inf"], "--target-bpp"),
    (["--target-bpp", "-1"], "--target-bpp"), (["--scale", "nan"], "--scale"), (["--scale", "inf"], "--scale"),
])
def test_non_finite_options_are_one_line_errors(tmp_path, photo, args, needle):
    one_line_error(run("compress", photo, tmp_path / "x.lat", "-m", "tiny-hp", *args), needle)


TINY = ["--channels", "8,12", "--patch", "64", "--batch-size", "2", "--holdout", "1", "--log-every", "1",
        "--ckpt-every", "2", "--val-every", "100", "--seed", "3", "--threads", "1"]


@pytest.fixture
def images(tmp_path, rng):
    return make_training_images(tmp_path / "imgs", rng)


@pytest.mark.parametrize("content", ["truncated", "pickled", "not a dict", "empty"])
def test_damaged_checkpoint_is_a_one_line_error(tmp_path, images, content):
    import pickle

    import torch

    out = tmp_path / "m"
    out.mkdir()
    ckpt = out / "checkpoint.pt"
    if content == "truncated":
        torch.save({"config": {"data": "x", "out": "y"}, "model": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:300])
    elif content == "pickled":
        ckpt.write_bytes(pickle.dumps(threading.Lock, protocol=2))  # a global a safe loader refuses
        torch.save({"obj": Path("x")}, ckpt)  # (a pickled object of another kind: weights_only refuses it)
    elif content == "not a dict":
        torch.save([1, 2, 3], ckpt)
    else:
        ckpt.write_bytes(b"")
    msg = one_line_error(run("train", images, "--out", out, "--resume", *TINY), "cannot resume", "checkpoint", log=True)
    assert "weights_only" not in msg and "trust" not in msg


def test_divergence_is_a_one_line_error_pointing_at_a_real_checkpoint(tmp_path, images, monkeypatch):
    import torch

    from aecli.codec.train import CodecTask

    real = CodecTask.loss
    diverge_at = {"step": 3}

    def loss(self, model, x, gen):
        value, stats = real(self, model, x, gen)
        diverge_at["step"] -= 1
        if diverge_at["step"] < 0:
            value = value * float("nan")
            stats = dict(stats, loss=value.detach())
        return value, stats

    monkeypatch.setattr(CodecTask, "loss", loss)
    out = tmp_path / "m"
    msg = one_line_error(run("train", images, "--out", out, "--steps", "10", *TINY[:-4], "--ckpt-every", "100",
                             "--threads", "1"), "diverged", "no checkpoint was written", log=True)
    assert not (out / "checkpoint.pt").exists() and "by step 4" in msg
    diverge_at["step"] = 3
    msg = one_line_error(run("train", images, "--out", out, "--steps", "10", *TINY), "diverged", log=True)
    ckpt = out / "checkpoint.pt"
    assert f"last checkpoint ({ckpt}, step 2)" in msg and torch.load(ckpt, weights_only=True)["step"] == 2


# ---------------------------------------------------------------- 8. resume keeps the schedule; Ctrl-C; atomic saves


def test_resume_keeps_the_saved_schedule(tmp_path, images):
    import torch

    out = tmp_path / "m"
    assert run("train", images, "--out", out, "--steps", "4", *TINY).exit_code == 0
    # no --steps: nothing to do (the old code made it a 100,000-step run: --time-limit bounds that here)
    r = run("train", images, "--out", out, "--resume", "--time-limit", "3", "--threads", "1")
    assert r.exit_code == 0, r.output
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["steps"] == 4 and state["config"]["ckpt_every"] == 2
    assert "change" not in r.stderr
    r = run("train", images, "--out", out, "--resume", "--steps", "6", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "schedule change at step 4: steps 4 -> 6" in r.stderr
    assert "the learning rate at step 4 changes from 1e-05 to 0.0001 until step 6" in r.stderr
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_saves_and_exits_130(tmp_path, images):
    import torch

    out = tmp_path / "m"
    p = subprocess.Popen(CMD + ["train", str(images), "--out", str(out), "--steps", "100000", *TINY],
                         env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "train.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and "step 2 " in log.read_text()):
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    assert p.wait(120) == 130, p.stderr.read()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 2 <= state["step"] < 100000
    assert "interrupted at step" in log.read_text()


def test_checkpoints_and_models_are_saved_under_unique_names_and_fsynced(tmp_path, monkeypatch):
    import torch

    from aecli.train.checkpoint import atomic_save

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append(("fsync", fd)), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append(("replace", Path(a).name, Path(b).name)),
                                                            real_replace(a, b))[1])
    for _ in range(2):
        atomic_save({"x": torch.zeros(3)}, tmp_path / "checkpoint.pt")
    registry.save({"w": torch.zeros(2)}, {"name": "m", "task": "denoise"}, tmp_path / "m.safetensors")
    replaces = [e for e in events if e[0] == "replace"]
    assert [e[2] for e in replaces] == ["checkpoint.pt", "checkpoint.pt", "m.safetensors", "m.json"]
    temps = [e[1] for e in replaces]
    assert len(set(temps)) == 4 and all(t.startswith(f".{e[2]}.") and t.endswith(".tmp") and t != f".{e[2]}.tmp"
                                        for t, e in zip(temps, replaces))
    for i, e in enumerate(events):  # each rename comes after an fsync of its file
        if e[0] == "replace":
            assert events[i - 1][0] == "fsync"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "m.json", "m.safetensors"]


# ---------------------------------------------------------------- 9. batches redo damaged outputs


def test_batch_redoes_damaged_existing_outputs(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        PILImage.fromarray(photo_like(20, 24, rng)).save(src / f"k0{i}.png")
    lats, back = tmp_path / "lat", tmp_path / "back"
    assert run("compress", src, lats, "-m", "tiny-hp", "--scale", "1").exit_code == 0
    assert run("decompress", lats, back).exit_code == 0
    good = (lats / "k00.lat").read_bytes()
    (lats / "k01.lat").write_bytes(good[:-5])  # left truncated by another program
    (lats / "k02.lat").write_bytes(good[:-4] + b"\0\0\0\0")  # bad CRC
    r = run("compress", src, lats, "-m", "tiny-hp", "--scale", "1")
    assert r.exit_code == 0, r.output
    assert "done 2, skipped 1, failed 0; 2 existing outputs damaged, redone" in r.stderr
    assert "k01.lat exists but is damaged (truncated .lat file)" in r.stderr
    for i in range(3):
        latformat.unpack((lats / f"k0{i}.lat").read_bytes())
    png = (back / "k01.png").read_bytes()
    (back / "k01.png").write_bytes(png[: len(png) // 2])
    r = run("decompress", lats, back)
    assert r.exit_code == 0 and "done 1, skipped 2, failed 0; 1 existing output damaged, redone" in r.stderr
    assert PILImage.open(back / "k01.png").size == (24, 20)


# ---------------------------------------------------------------- 10. what a hostile file may cost


def test_info_shows_what_decoding_costs_and_the_limit(tmp_path, model_dir, monkeypatch):
    fp = bytes.fromhex(json.loads((model_dir / "tiny-hp.json").read_text())["fingerprint"])
    bomb = tmp_path / "bomb.lat"
    bomb.write_bytes(latformat.pack(latformat.LatFile("tiny-hp", fp, 2, 2000, 2000, "RGB", (b"", b"", b""))))
    assert bomb.stat().st_size < 32
    r = run("info", bomb, "--json")
    d = json.loads(r.stdout)[0]["decode"]
    assert (d["padded_width"], d["pixels"], d["limit"], d["within_limit"]) == (2048, 2048 * 2048, 1 << 26, True)
    assert d["estimated_seconds"] > 1 and d["estimated_peak_mb"] > 500
    line = [x for x in run("info", bomb).stdout.splitlines() if x.strip().startswith("decoding")][0]
    assert "2048x2048 padded = 4.2 MP, within the limit of 67.1 MP (default)" in line and " s and up to " in line
    monkeypatch.setenv("AECLI_MAX_PIXELS", "1000000")
    line = [x for x in run("info", bomb).stdout.splitlines() if x.strip().startswith("decoding")][0]
    assert "over the limit of 1.0 MP (AECLI_MAX_PIXELS): refused" in line
    readme = (ROOT / "README.md").read_text()
    assert "## Safety" in readme and "34 s" in readme
