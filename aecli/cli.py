"""The command line: parse options, call the core, print.  No torch import at module level."""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="aecli",
    help="Compress and denoise images with convolutional autoencoders, and train them. '-' is stdin/stdout; folders are batches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _guarded(fn):
    """User errors become one line on stderr and exit code 1; Ctrl-C exits 130.  So do errors of the
    environment that got past the library's own checks (errors.environment_error); other exceptions
    are bugs and keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import UserError, environment_error

        try:
            code = fn(*args, **kwargs)
        except UserError as exc:
            print(f"aecli: error: {exc}", file=sys.stderr)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            print("aecli: interrupted", file=sys.stderr)
            raise typer.Exit(130)
        except BrokenPipeError:
            raise typer.Exit(1)
        except Exception as exc:
            msg = environment_error(exc)
            if msg is None:
                raise
            print(f"aecli: error: {msg}", file=sys.stderr)
            raise typer.Exit(1)
        if code:
            raise typer.Exit(code)

    return wrapper


QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (-q is quiet, as in curl and grep; quality is -Q).")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Also say what takes the time: start-up, model load, each file.")
OUTPUT_QUALITY = typer.Option(None, "--output-quality", min=1, max=100, help="JPEG and WebP outputs: lossy at this quality "
                              "(1-100). Default: WebP lossless, JPEG 95; PNG, TIFF and BMP are always lossless.")
FORCE = typer.Option(False, "--force", "-f", help="Replace outputs that exist (refused otherwise; folder batches skip them).")
WORKERS = typer.Option(1, "--workers", "-j", min=1, max=256, help="Folders: files processed at once, sharing the CPU "
                       "threads and the one loaded model (try the number of cores for many small images).")
DEVICE = typer.Option("cpu", "--device", help="Where the transforms run: cpu, cuda, cuda:N, mps or auto. Files decode "
                      "alike everywhere (docs/codec.md, 'Determinism').")


@app.command()
@_guarded
def compress(
    input: str = typer.Argument(..., help="Image file, '-' for stdin, or a folder."),
    output: Optional[str] = typer.Argument(None, help="The .lat file, '-' for stdout, or a folder (default: INPUT with .lat); or -o."),
    output_opt: Optional[str] = typer.Option(None, "--output", "-o", help="The output, as the second argument."),
    quality: Optional[int] = typer.Option(None, "--quality", "-Q", help="1 = smallest file ... 11 = best quality (default 8 for "
                                          "'hpc'; on Kodak24 1 is about 0.05 bpp / 24 dB, 8 about 0.9 bpp / 34 dB, 11 about "
                                          "2 bpp / 38 dB: README, 'Quality scale'; 'aecli models')."),
    target_bpp: Optional[float] = typer.Option(None, "--target-bpp", help="Pick the best quality whose file is at most this many bits per pixel."),
    max_bytes: Optional[int] = typer.Option(None, "--max-bytes", help="Pick the best quality whose file fits in this many bytes."),
    nearest: bool = typer.Option(False, "--nearest", help="With --target-bpp/--max-bytes: when no quality fits, write the smallest "
                                 "file with a warning instead of failing."),
    metadata: str = typer.Option("icc,exif", "--metadata", help="What to keep from the source: all, none, or a comma list of "
                                 "icc, exif, xmp (default icc,exif; the EXIF orientation is applied to the pixels and dropped)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name (bundled or installed) or path (with a '/' or a leading '.'; "
                                        "default: the bundled 'hpc'); 'fit': the fitted codec, a small network fitted to each "
                                        "image at encode time (slow encoding, small files; docs/fitted.md)."),
    effort: int = typer.Option(0, "--effort", "-e", help="0 = fast (default); 1, 2, 3: fit the latents to each image by "
                               "50, 100, 200 gradient steps: smaller files at equal quality, far slower encoding "
                               "(decoding unchanged; docs/codec.md). With --model fit: 1..5 = 100, 300, 800, 2000, "
                               "3000 fitting iterations (default 2; 5 takes under 10 minutes for 768x512 on 2 cores)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="With --model fit: fit each image for at most "
                                               "about this many seconds (fewer iterations than the effort's when needed)."),
    scale: str = typer.Option("auto", "--scale", help="auto (default): code each image at its own size and at 11/8 of it, "
                              "keep the better file; 1: its own size only (about 6x faster); 1.375: always 11/8 "
                              "(docs/codec.md, 'Coding scale')."),
    force: bool = FORCE,
    quiet: bool = QUIET,
    workers: int = WORKERS,
    device: str = DEVICE,
    verbose: bool = VERBOSE,
):
    """Compress images to .lat files with the learned codec."""
    from .codec import files

    return files.compress(input, _output(output, output_opt), model=model, quality=quality, target_bpp=target_bpp,
                          max_bytes=max_bytes, force=force, quiet=quiet, workers=workers, device=device, effort=effort,
                          scale=scale, metadata=metadata, nearest=nearest, verbose=verbose, time_limit=time_limit)


@app.command()
@_guarded
def decompress(
    input: str = typer.Argument(..., help="A .lat file, '-' for stdin, or a folder of .lat files."),
    output: Optional[str] = typer.Argument(None, help="Image file (format from extension: png jpg webp tiff bmp), '-', or a folder "
                                           "(default: INPUT.decoded.png, never INPUT.png); or -o."),
    output_opt: Optional[str] = typer.Option(None, "--output", "-o", help="The output, as the second argument."),
    output_quality: Optional[int] = OUTPUT_QUALITY,
    format: Optional[str] = typer.Option(None, "--format", help="Output format when it cannot come from the extension (stdout, folders)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model to decode with (default: the one the file names)."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Refuse files that claim a bigger image (padded to the model's "
                                             "alignment), against decompression bombs (default: $AECLI_MAX_PIXELS or 67108864 = 2^26; 0: no limit)."),
    force: bool = FORCE,
    quiet: bool = QUIET,
    workers: int = WORKERS,
    device: str = DEVICE,
    exact: bool = typer.Option(False, "--exact", help="Fixed-point synthesis: the same pixels on every machine, CPU or GPU "
                               "(about 4x slower; without it, pixels may differ by one level between devices)."),
    verbose: bool = VERBOSE,
):
    """Decode .lat files back to images (with the ICC profile, EXIF and XMP the file carries)."""
    from .codec import files

    return files.decompress(input, _output(output, output_opt), model=model, fmt=format, force=force, quiet=quiet,
                            max_pixels=max_pixels, workers=workers, device=device, exact=exact,
                            output_quality=output_quality, verbose=verbose)


@app.command()
@_guarded
def info(
    inputs: list[str] = typer.Argument(..., help=".lat files ('-' for stdin)."),
    json: bool = typer.Option(False, "--json", help="Machine-readable output: a list with one object per file, always."),
):
    """Show what a .lat file holds: model, quality, size, bpp, metadata, integrity."""
    from . import inspection as inspect

    rows, failed = [], 0
    for src in inputs:
        try:
            rows.append(inspect.lat_info(src))
        except Exception as exc:  # noqa: BLE001 - reported per file, like a batch
            from .errors import UserError

            if not isinstance(exc, UserError):
                raise
            failed += 1
            print(f"aecli: error: {exc}", file=sys.stderr)
    if json:
        print(inspect.to_json(rows))
    else:
        for r in rows:
            print(inspect.format_info(r))
    return 1 if failed else 0


@app.command()
@_guarded
def models(
    action: Optional[str] = typer.Argument(None, help="install: copy the model trained into DIR to ~/.aecli/models "
                                           "($AECLI_HOME/models), where commands find it by its name."),
    target: Optional[Path] = typer.Argument(None, help="install: the model's folder (the --out of 'aecli train')."),
    json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    path: list[Path] = typer.Option([], "--path", help="Also list models in this folder (repeatable)."),
    force: bool = typer.Option(False, "--force", "-f", help="install: replace other weights installed under the same name."),
):
    """List the bundled and user models with their quality levels ('*' marks the defaults); 'aecli models install DIR' installs one."""
    if action is not None:
        from .registry import install_command

        return install_command(action, target, force)
    from . import inspection as inspect

    rows = inspect.model_rows(path)
    print(inspect.to_json(rows) if json else inspect.format_models(rows))


@app.command()
@_guarded
def compare(
    inputs: list[str] = typer.Argument(..., help="Images or folders."),
    quality: Optional[int] = typer.Option(None, "--quality", "-Q", help="Our quality level (default: the model's)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Codec model name or path (default: the bundled 'hpc')."),
    json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    effort: int = typer.Option(0, "--effort", "-e", help="Encoder effort of our files (see 'aecli compress --help')."),
):
    """Compress each image, and show JPEG and WebP given the same number of bytes."""
    from .codec.api import load_codec
    from .eval import codec_eval

    rows, failed = codec_eval.compare(inputs, model, quality, effort)
    print(codec_eval.to_json(rows) if json else codec_eval.format_compare(rows, load_codec(model).name))
    return 1 if failed else 0


@app.command("eval")
@_guarded
def evaluate(
    inputs: list[str] = typer.Argument(..., help="Images or folders (e.g. ../shared/data/Kodak24)."),
    out: Path = typer.Option(Path("eval"), "--out", "-o", help="Folder for NAME.md/.csv/.json and NAME.png."),
    name: str = typer.Option("rd", "--name", help="Base name of the result files."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Codec model name or path (default: the bundled 'hpc')."),
    baselines: str = typer.Option("jpeg,webp,avif", "--baselines", help="Comma-separated; empty for none."),
    published: Optional[str] = typer.Option(None, "--published", help="JSON of published RD curves to compare with."),
    effort: int = typer.Option(0, "--effort", "-e", help="Encoder effort of our files (see 'aecli compress --help')."),
    resume: bool = typer.Option(False, "--resume", help="Go on from an interrupted run: reuse the images it finished "
                                "(kept in OUT/NAME.partial.jsonl until the results are written)."),
):
    """Rate-distortion sweep of every quality vs JPEG/WebP/AVIF: BD-rates, table, plot."""
    from .eval import codec_eval

    chosen = tuple(b.strip() for b in baselines.split(",") if b.strip())
    bad = [b for b in chosen if b not in codec_eval.BASELINE_QUALITIES]
    if bad:
        from .errors import UserError

        raise UserError(f"unknown baseline {bad[0]} (choose from jpeg, webp, avif)")
    result = codec_eval.evaluate(inputs, str(out), model, chosen, published, name, effort, resume)
    print((out / f"{name}.md").read_text())
    return 0 if result and not result.get("unreadable") else 1


@app.command()
@_guarded
def denoise(
    input: str = typer.Argument(..., help="Noisy image file, '-' for stdin, or a folder."),
    output: Optional[str] = typer.Argument(None, help="Image file (format from extension), '-' for stdout (PNG), or a folder (default: INPUT-denoised); or -o."),
    output_opt: Optional[str] = typer.Option(None, "--output", "-o", help="The output, as the second argument."),
    output_quality: Optional[int] = OUTPUT_QUALITY,
    sigma: Optional[str] = typer.Option(None, "--sigma", "-s", help="Noise level on the 0-255 scale (Gaussian noise: the bundled 'dn'), "
                                        "or 'auto' (default: the bundled 'dn-real' estimates a noise map of real camera noise and reports it)."),
    strength: str = typer.Option("1", "--strength", help="How hard to denoise: multiplies the noise level, 0..4 "
                                 "(below 1 keeps more texture, above 1 smooths more), or light (0.6), normal (1), strong (1.5)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name (bundled or installed) or path (with a '/' or a leading '.'; "
                                        "default: 'dn-real' for --sigma auto, 'dn' for a given sigma)."),
    force: bool = FORCE,
    quiet: bool = QUIET,
    workers: int = WORKERS,
    device: str = typer.Option("cpu", "--device", help="Where the network runs: cpu, cuda, cuda:N, mps or auto."),
    verbose: bool = VERBOSE,
):
    """Remove noise from images with the denoising autoencoder."""
    from .denoise import files
    from .denoise.noise import Sigma, parse_strength

    return files.denoise(input, _output(output, output_opt), model=model, sigma=Sigma.parse(sigma), force=force,
                         quiet=quiet, workers=workers, device=device, strength=parse_strength(strength),
                         output_quality=output_quality, verbose=verbose)


@app.command()
@_guarded
def noise(
    input: str = typer.Argument(..., help="Clean image file, '-' for stdin, or a folder."),
    output: Optional[str] = typer.Argument(None, help="Image file (format from extension), '-' for stdout (PNG), or a folder; or -o."),
    output_opt: Optional[str] = typer.Option(None, "--output", "-o", help="The output, as the second argument."),
    sigma: float = typer.Option(..., "--sigma", "-s", help="Gaussian noise standard deviation on the 0-255 scale."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same noise (a folder's files each get their own)."),
    poisson: Optional[float] = typer.Option(None, "--poisson", help="Also Poisson (shot) noise: PEAK photons for white (e.g. 30)."),
    force: bool = FORCE,
    quiet: bool = QUIET,
):
    """Add synthetic noise to images (test inputs for 'aecli denoise'), clipped to 8 bits."""
    from .denoise import files

    out = _output(output, output_opt)
    if out is None:
        from .errors import UserError

        raise UserError("noise needs an output: a second argument or -o FILE")
    return files.noise(input, out, sigma=sigma, seed=seed, peak=poisson, force=force, quiet=quiet)


class Task(str, Enum):
    codec = "codec"
    denoise = "denoise"
    autoencoder = "autoencoder"


@app.command()
@_guarded
def train(
    data: Path = typer.Argument(..., help="Folder of training images (recursive, any image type)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: checkpoint, exported weights, log."),
    task: Optional[Task] = typer.Option(None, "--task", help="What to train (default: from --model; codec when neither is given)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="codec: hyperprior (default), checkerboard, factorized; denoise: unet; "
                                        "autoencoder family: dense, conv, vae, sparse, contractive, denoising."),
    quality: Optional[int] = typer.Option(None, "--quality", help="codec: train a single quality level (1..11) instead of all."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimisation steps (codec, denoise: 100000 on a GPU, 5000 or "
                                        "one hour on a CPU; with --init, 5000 on a GPU, 400 or 30 minutes on a CPU)."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="family: passes over the training images (default 20; --steps wins)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="codec 8, denoise 16, family 256."),
    patch: Optional[int] = typer.Option(None, "--patch", help="codec, denoise: crop size in pixels (128)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (codec 1e-4, denoise 2e-4: divided by 10 after 90% of the steps; family 1e-3, constant)."),
    channels: Optional[str] = typer.Option(None, "--channels", help="codec: N,M (64,128); denoise: U-Net widths (32,64,128); conv/denoising: conv widths (32,64)."),
    blocks: Optional[int] = typer.Option(None, "--blocks", help="denoise: residual blocks per U-Net scale (default 2)."),
    sigma_range: Optional[str] = typer.Option(None, "--sigma-range", help="denoise: LO,HI noise levels (0-255 scale) drawn per sample (default 0,50)."),
    real_noise: bool = typer.Option(False, "--real-noise", help="denoise: a blind model for real camera noise (sensor noise through a "
                                    "simulated camera pipeline, demosaicing, JPEG), with its own noise-level estimator."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from this model's weights: a bundled or installed name "
                                       "(dn, hpc), a model path or a checkpoint.pt; the tensors that fit are copied."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="family: code size (default 32)."),
    hidden: Optional[str] = typer.Option(None, "--hidden", help="family: hidden layer sizes, such as 256,128 (dense kinds: none; vae: 512)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="family: resize images to SIZE x SIZE (default: the first image's size)."),
    grayscale: Optional[bool] = typer.Option(None, "--grayscale", help="family: train on gray images."),
    loss: Optional[str] = typer.Option(None, "--loss", help="family: bce (default) or mse reconstruction loss."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="family: adam (default), sgd (momentum 0.9) or rmsprop."),
    l1: Optional[float] = typer.Option(None, "--l1", help="sparse: L1 activity penalty on the code (default 1e-4)."),
    weight_l1: Optional[float] = typer.Option(None, "--weight-l1", help="family: L1 penalty on the weights."),
    l2: Optional[float] = typer.Option(None, "--l2", help="family: L2 penalty on the weights."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="family: dropout rate after hidden layers and the code."),
    sparsity: Optional[str] = typer.Option(None, "--sparsity", help="sparse: l1 (default) or kl (target mean activation)."),
    sparsity_target: Optional[float] = typer.Option(None, "--sparsity-target", help="sparse, kl: target mean activation rho (0.05)."),
    sparsity_weight: Optional[float] = typer.Option(None, "--sparsity-weight", help="sparse, kl: weight of the KL penalty (1e-3)."),
    contractive_weight: Optional[float] = typer.Option(None, "--contractive-weight", help="contractive: weight of ||dz/dx||_F^2 (1e-4)."),
    noise: Optional[float] = typer.Option(None, "--noise", help="denoising: std of the Gaussian noise on inputs, 0..1 scale (0.5)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="vae: weight of the KL term (1.0)."),
    val_split: Optional[float] = typer.Option(None, "--val-split", help="family: fraction held out for validation (0.1)."),
    val_dir: Optional[Path] = typer.Option(None, "--val-dir", help="family: validate on this folder instead of a split."),
    score_pool: Optional[int] = typer.Option(None, "--score-pool", help="family: anomaly score = squared error of the residual's NxN block means (default 2; 1: per pixel)."),
    percentile: Optional[float] = typer.Option(None, "--threshold-percentile", help="family: anomaly threshold = this percentile of the training scores (99)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    threads: int = typer.Option(0, "--threads", help="CPU threads (0: torch's default)."),
    holdout: Optional[int] = typer.Option(None, "--holdout", help="codec, denoise: images kept apart for validation (the last in "
                                          "sorted order; default: one in 8, at least 1 and at most 8)."),
    ckpt_every: Optional[int] = typer.Option(None, "--ckpt-every", help="Steps between checkpoints (family: one epoch)."),
    val_every: Optional[int] = typer.Option(None, "--val-every", help="Steps between validations (family: one epoch)."),
    log_every: Optional[int] = typer.Option(None, "--log-every"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt (its recipe wins; --steps/--epochs may extend it, "
                                "and --batch-size/--patch/--lr change it from here on when given)."),
    install: bool = typer.Option(False, "--install", help="When training ends, install the model under its name "
                                 "(as 'aecli models install OUT')."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop after this many seconds of training, with a checkpoint "
                                               "and exported weights (0: no limit; default: none on a GPU, see --steps on a CPU); --resume continues."),
):
    """Train a model on a folder of images (resumable; Ctrl-C writes a checkpoint)."""
    from .train import run as train_run

    family = {"epochs": epochs, "latent": latent_dim, "hidden": hidden, "image_size": image_size, "grayscale": grayscale,
              "loss": loss, "optimizer": optimizer, "l1": l1, "weight_l1": weight_l1, "l2": l2, "dropout": dropout,
              "sparsity": sparsity, "sparsity_target": sparsity_target, "sparsity_weight": sparsity_weight,
              "contractive_weight": contractive_weight, "noise": noise, "beta": beta, "val_split": val_split,
              "val_dir": str(val_dir) if val_dir else None, "percentile": percentile, "score_pool": score_pool}
    return train_run.main(
        data=data, out=out, task=task.value if task else None, model=model, quality=quality, steps=steps,
        batch_size=batch_size, patch=patch, lr=lr, channels=channels, blocks=blocks, sigma_range=sigma_range, seed=seed,
        device=device, threads=threads, holdout=holdout, ckpt_every=ckpt_every, val_every=val_every,
        log_every=log_every, resume=resume, family=family, time_limit=time_limit, real_noise=real_noise, init=init,
        install=install,
    )


FAMILY_MODEL = typer.Option(None, "--model", "-m", help="A trained autoencoder: its --out folder (./NAME) or its installed name "
                             "(default: the bundled fashion-ae, a dense autoencoder of 28x28 FashionMNIST images).")
SAMPLER_MODEL = typer.Option(None, "--model", "-m", help="A trained VAE: its --out folder (./NAME) or its installed name "
                             "(default: the bundled fashion-vae, trained on 28x28 FashionMNIST images).")


@app.command()
@_guarded
def embed(
    input: str = typer.Argument(..., help="Image file or folder (recursive; the first subfolder is the label)."),
    output: str = typer.Option("-", "--output", "-o", help="codes.npy (N x latent), .npz (codes, paths, labels) or .csv (path, label, z...); '-' = CSV on stdout."),
    model: Optional[str] = FAMILY_MODEL,
    plot: Optional[str] = typer.Option(None, "--plot", help="Also draw a 2-D map (PCA of the codes) coloured by subfolder, to this PNG."),
    force: bool = FORCE,
    quiet: bool = QUIET,
):
    """Codes of images from an autoencoder's encoder (dimensionality reduction, features)."""
    from .family import files

    return files.embed(input, output, model=model, plot=plot, quiet=quiet, force=force)


@app.command()
@_guarded
def score(
    input: str = typer.Argument(..., help="Image file or folder."),
    model: Optional[str] = FAMILY_MODEL,
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Flag scores above this (default: the model's calibrated "
                                              "threshold, the 99th percentile of its training images' scores: about 1 in 100 "
                                              "images like the training set is flagged, and most images unlike it are)."),
    output: str = typer.Option("-", "--output", "-o", help="CSV file, or '-' for stdout."),
    force: bool = FORCE,
    quiet: bool = QUIET,
):
    """Anomaly scores from reconstruction error: CSV path,score,anomaly (1: unlike the model's training images)."""
    from .family import files

    return files.score(input, output, model=model, threshold=threshold, quiet=quiet, force=force)


@app.command()
@_guarded
def reconstruct(
    input: str = typer.Argument(..., help="Image file or folder."),
    output: str = typer.Option(..., "--output", "-o", help="Grid picture (png, ...): inputs over reconstructions."),
    model: Optional[str] = FAMILY_MODEL,
    count: int = typer.Option(16, "-n", help="Images to show (the first in sorted order)."),
    cols: int = typer.Option(8, "--cols", help="Images per row (at most the number of images shown)."),
    force: bool = FORCE,
    quiet: bool = QUIET,
):
    """A picture of images over their reconstructions."""
    from .family import files

    return files.reconstruct(input, output, model=model, count=count, cols=cols, quiet=quiet, force=force)


@app.command()
@_guarded
def sample(
    output: str = typer.Option(..., "--output", "-o", help="Grid picture (png, ...)."),
    model: Optional[str] = SAMPLER_MODEL,
    count: int = typer.Option(64, "-n", help="Number of samples."),
    seed: int = typer.Option(0, "--seed"),
    temperature: float = typer.Option(1.0, "--temperature", help="Scale of the prior's standard deviation."),
    interpolate: Optional[tuple[str, str]] = typer.Option(None, "--interpolate", help="A.png B.png: decode the straight walk between the two images' codes instead."),
    steps: int = typer.Option(10, "--steps", help="Images along the interpolation."),
    force: bool = FORCE,
    quiet: bool = QUIET,
):
    """Generate images from a VAE, or interpolate between two images in latent space."""
    from .family import files

    return files.sample(output, model=model, count=count, seed=seed, temperature=temperature,
                        interpolate=list(interpolate) if interpolate and interpolate[0] else None,
                        steps=steps, quiet=quiet, force=force)


def _output(positional: str | None, option: str | None) -> str | None:
    """The output of a command that takes it as a second argument or as -o/--output (not both)."""
    if positional is not None and option is not None:
        from .errors import UserError

        raise UserError(f"two outputs given ({positional} and -o {option}); give one")
    return option if option is not None else positional


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"aecli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_version, help="Print the version and exit."),
):
    """Compress and denoise images with convolutional autoencoders, and train them. '-' is stdin/stdout; folders are batches."""


def command():
    """The click command of the app, with help text as image tools show it: argument names in capitals
    (INPUT, [OUTPUT], INPUTS...), option values as N, X or TEXT, and each command's whole first sentence
    in the command list."""
    from .helptext import tidy

    return tidy(typer.main.get_command(app))


def main() -> None:
    import os

    instruction = os.environ.get("_AECLI_COMPLETE")
    if instruction:  # shell completion: eval "$(_AECLI_COMPLETE=bash_source aecli)" (also zsh_source, fish_source)
        from typer._completion_classes import completion_init

        completion_init()
        shell, _, verb = instruction.partition("_")
        if shell in ("bash", "zsh", "fish", "powershell", "pwsh") and verb in ("source", "complete"):
            os.environ["_AECLI_COMPLETE"] = f"{verb}_{shell}"  # click's order, in the order typer reads
    try:
        command()(prog_name="aecli")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    _exit(code)


def _exit(code) -> None:
    """Exit with `code` (as sys.exit takes it).  Once torch is loaded, skip the interpreter's
    teardown, which then costs about 0.3 s of every command (README, "Speed as you time it"): all outputs are
    written and closed by now, so flush what is buffered and leave."""
    import os

    if "torch" not in sys.modules:
        sys.exit(code)
    import logging

    logging.shutdown()
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        status = status or 1
    try:
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    os._exit(status)


if __name__ == "__main__":
    main()
