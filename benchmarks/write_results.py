"""Assemble docs/results.md from the recorded benchmark outputs and the bundled model's metadata.

    python -m benchmarks.write_results

Appends docs/results_notes.md (hand-written). Reads, in docs/results/, rd_kodak.json (benchmarks/kodak_codec.sh),
baselines.json (python -m benchmarks.baselines_kodak) and speed.json (python -m benchmarks.speed), and weights/*.json.
"""

from __future__ import annotations

import json

from .common import DOCS, RESULTS, ROOT


def load(name: str):
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def pct(v) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def main() -> None:
    out = ["# Results", "", "Every number here was produced by a committed script; the command is given with each table.", ""]

    out += ["## Bundled models", ""]
    out += ["| model | task | architecture | steps | hardware | training time | data | batch x patch | seed |", "|---|---|---|---|---|---|---|---|---|"]
    metas = [json.loads(p.read_text()) for p in sorted((ROOT / "weights").glob("*.json"))]
    for m in metas:
        t = m.get("training", {})
        a = m.get("architecture", {})
        arch = ", ".join(f"{k}={v}" for k, v in a.items() if k != "lambdas")
        out.append(f"| {m['name']} | {m['task']} | {arch} | {t.get('steps')} | {t.get('hardware')} | "
                   f"{t.get('seconds', 0) / 3600:.2f} h | {t.get('data')} ({t.get('images')} images) | "
                   f"{t.get('batch_size')} x {t.get('patch')} | {t.get('seed')} |")
    out.append("")
    for m in metas:
        t = m.get("training", {})
        val = (m.get("validation") or {}).get("estimated_rd")
        if val:
            how = ("bpp: code length of the rounded latents under the model's densities, within a few percent of "
                   "the coded streams" if m["validation"].get("rate") else
                   "bpp estimated from the model's likelihoods at noisy latents, which overstates low rates")
            out += [f"Validation of `{m['name']}` on its {len(m['validation'].get('images', []))} held-out CBSD432 images "
                    f"({how}; PSNR of the rounded 8-bit reconstruction):", "",
                    "| quality | bpp | PSNR (dB) |", "|---|---|---|"]
            out += [f"| {r['quality']} | {r['bpp']:.4f} | {r['psnr']:.2f} |" for r in val]
        dval = (m.get("validation") or {}).get("psnr")
        if dval:
            out += [f"Validation of `{m['name']}` on its {len(m['validation'].get('images', []))} held-out CBSD432 images "
                    f"({m['validation'].get('noise', 'Gaussian noise')}):", "",
                    "| sigma | PSNR, true sigma (dB) | PSNR, blind (dB) | mean estimated sigma |", "|---|---|---|---|"]
            out += [f"| {r['sigma']} | {r['psnr']:.2f} | {r['psnr_blind']:.2f} | {r['sigma_estimated']:.2f} |" for r in dval]
        if m.get("task") == "autoencoder" and m.get("validation"):
            figures = ", ".join(f"{k} {v:g}" for k, v in m["validation"].items())
            out += [f"Validation of `{m['name']}` on its {t.get('val_images')} held-out training images: {figures} "
                    f"(on data it never saw: [family_bundled.md](results/family_bundled.md))."]
        segs = t.get("segments") or []
        if segs:
            out += ["", f"Training segments of `{m['name']}` (one per process; batch, crop and lr where recorded):", "",
                    "| steps | hardware | seconds | batch x crop | lr |", "|---|---|---|---|---|"]
            for g in segs:
                bc = f"{g['batch_size']} x {g['patch']}" if "batch_size" in g else "recipe"
                out.append(f"| {g['from_step']}-{g['to_step']} | {g['hardware']} | {g['seconds']:.0f} | {bc} | {g.get('lr', 'recipe')} |")
        for e in t.get("extensions") or []:  # changes made outside the training loop
            what = {"levels": f"levels with lambda {e.get('lambdas_added')} added, {e.get('gain_steps')} steps of their gains alone "
                              f"(batch {e.get('batch_size')} x {e.get('patch')}, lr {e.get('lr')})",
                    "widen": f"transforms widened from N={e.get('n', ['?', '?'])[0]} to N={e.get('n', ['?', '?'])[1]}"}.get(e.get("kind"), e.get("kind"))
            out += ["", f"At step {e.get('at_step')}: {what}; {e.get('hardware', '')}"
                        + (f", {e['seconds']:.0f} s" if "seconds" in e else "") + f" (`{e.get('command', '')}`)."]
        out.append("")

    rd = load("rd_kodak.json")
    if rd:
        out += ["## Rate-distortion on Kodak24", "", "Command: `bash benchmarks/kodak_codec.sh` "
                "(= `aecli eval ../shared/data/Kodak24 --out docs/results --name rd_kodak --published ../shared/reference/kodak_rd_published.json`).", "",
                "bpp from real file sizes (the whole .lat file; Pillow's whole JPEG/WebP/AVIF files), RGB PSNR, MS-SSIM; "
                "each point is the mean over the 24 images. BD-rate < 0 means aecli needs fewer bits than the other codec at equal quality.", "",
                "| aecli vs | BD-rate (PSNR) | BD-PSNR (dB) | BD-rate (MS-SSIM dB) |", "|---|---|---|---|"]
        for b, v in rd["bd_rate_vs"].items():
            out.append(f"| {b} | {pct(v['bd_rate_psnr'])} | {v['bd_psnr'] if v['bd_psnr'] is not None else 'n/a'} | {pct(v['bd_rate_msssim'])} |")
        for k, v in rd.get("bd_rate_vs_published", {}).items():
            out.append(f"| {k} (published; bpp of its strings only) | {pct(v['bd_rate_psnr'])} | | |")
        out += ["", "![RD plot](results/rd_kodak.png)", "", "Per-quality points of aecli:", "",
                "| quality | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |", "|---|---|---|---|---|---|"]
        for p in rd["curves"]["aecli"]:
            out.append(f"| {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} | {p['encode_s']:.2f} | {p['decode_s']:.2f} |")
        out += ["", "All points of all codecs: [rd_kodak.md](results/rd_kodak.md), [rd_kodak.csv](results/rd_kodak.csv).", ""]

    sweeps = [(f"rd_kodak_effort{e}", f"Encoder effort {e} on Kodak24", f"EFFORT={e} bash benchmarks/kodak_codec.sh",
               "the same weights and decoder; each file's latents fitted to its image (docs/codec.md, 'Encoder effort')")
              for e in (1, 2, 3)]  # the same sweep with the encoder's refinement (aecli compress --effort E)
    sweeps += [("rd_kodak_hpc", "The checkerboard model `hpc` on Kodak24", "MODEL=hpc bash benchmarks/kodak_codec.sh",
                "`hp` with a checkerboard context model fitted to its frozen transforms (docs/codec.md)")]
    sweeps += [(f"rd_kodak_hpc_effort{e}", f"`hpc` at encoder effort {e} on Kodak24",
                f"MODEL=hpc EFFORT={e} bash benchmarks/kodak_codec.sh", "the checkerboard model, latents fitted to each image")
               for e in (1, 2, 3)]
    for name, title, command, what in sweeps:
        rde = load(f"{name}.json")
        if not rde:
            continue
        out += [f"### {title}", "", f"Command: `{command}`: {what}.", "",
                "| aecli vs | BD-rate (PSNR) | BD-PSNR (dB) | BD-rate (MS-SSIM dB) |", "|---|---|---|---|"]
        for b, v in rde["bd_rate_vs"].items():
            out.append(f"| {b} | {pct(v['bd_rate_psnr'])} | {v['bd_psnr'] if v['bd_psnr'] is not None else 'n/a'} | {pct(v['bd_rate_msssim'])} |")
        for k, v in rde.get("bd_rate_vs_published", {}).items():
            out.append(f"| {k} (published; bpp of its strings only) | {pct(v['bd_rate_psnr'])} | | |")
        out += ["", "| quality | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |", "|---|---|---|---|---|---|"]
        for p in rde["curves"]["aecli"]:
            out.append(f"| {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} | {p['encode_s']:.2f} | {p['decode_s']:.2f} |")
        out += ["", f"All points: [{name}.md](results/{name}.md), plot [{name}.png](results/{name}.png).", ""]

    base = load("baselines.json")
    if base:
        out += ["## The classical codecs among themselves (Kodak24)", "",
                "Command: `python -m benchmarks.baselines_kodak --data ../shared/data/Kodak24 --out docs/results/baselines.json`; "
                f"settings: {'; '.join(f'{k}: {v}' for k, v in base['settings'].items())}.", "",
                "| test vs anchor | BD-rate (PSNR) | BD-PSNR (dB) | BD-rate (MS-SSIM dB) |", "|---|---|---|---|"]
        for v in base["bd"]:
            out.append(f"| {v['test']} vs {v['anchor']} | {pct(v['bd_rate_psnr_cubic_pct'])} | {v['bd_psnr_db']:+.2f} | {pct(v['bd_rate_msssim_db_cubic_pct'])} |")
        out.append("")

    sp = load("speed.json")
    if sp:
        out += ["## Speed and memory (CPU)", "", f"Command: `python -m benchmarks.speed` on {sp['machine']}. Model loading excluded; "
                "peak RSS is the whole process (torch and the model included).", "",
                "| image | quality | bpp | encode s | decode s | peak RSS MB |", "|---|---|---|---|---|---|"]
        for r in sp["rows"]:
            out.append(f"| {r['width']}x{r['height']} | {r['quality']} | {r['bpp']:.3f} | {r['encode_s']:.2f} | {r['decode_s']:.2f} | {r['peak_rss_mb']:.0f} |")
        out.append("")
    notes = DOCS / "results_notes.md"  # hand-written reading of the numbers, kept across regenerations
    if notes.exists():
        out += [notes.read_text().rstrip()]
    (DOCS / "results.md").write_text("\n".join(out) + "\n")
    print(f"wrote {DOCS / 'results.md'}")


if __name__ == "__main__":
    main()
