"""The measurements behind the numbers in docs/, written to docs/results/ (not installed with aecli).

Each benchmark is a module run from the repository root, so that it measures this checkout's aecli:

    python -m benchmarks.NAME --help

What they share (paths, timing, measurements in fresh processes, report files, the idx data sets)
is in benchmarks/common.py; a benchmark imports that module and never another benchmark.

codec       baselines_kodak, kodak_codec.sh (bash: `aecli eval` on Kodak24), codec_ceiling, level_scales,
            refine_effort, fitted_tradeoff, cross_device, write_results (docs/results.md)
speed       speed, scale, batch_workers, perf_layout, profile_cpu, startup, vs_compressai
denoiser    denoise_eval, denoise_real
family      family_fmnist, family_bundled, family_score_dev, idx_folders (the idx sets as image folders)
"""
