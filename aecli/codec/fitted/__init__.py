"""The fitted codec: one image coded as a pyramid of latent planes, a small autoregressive entropy
model (ARM) and a small synthesis network, all fitted to that image at encode time.

Modules, one job each:

* ``header``    the structure record at the head of a fitted file (standard library only);
* ``tables``    the Laplace model's integer tables, as the coder uses them (numpy);
* ``laplace``   the same model's likelihood, differentiable, for fitting (torch);
* ``context``   which latents the ARM sees, for fitting (whole planes, torch) and coding (one phase, numpy);
* ``intarm``    the ARM in exact integer arithmetic, as encoder and decoder run it (numpy);
* ``stream``    range coding of parameters and latents, phase by phase (constriction, numpy);
* ``decoder``   a fitted file to pixels with numpy alone: latents, then the float32 synthesis;
* ``nets``      the ARM and synthesis networks the fit trains, and their parameters as integers (torch);
* ``kernels``   fast CPU forms of their hot parts: aligned upsampling, chunked MLPs, fused bits;
* ``fit``       the fitting loop (Adam on rate + lambda * MSE) and the rounding of its parameters;
* ``rounding``  the latents' integers chosen by their cost once the fit is done;
* ``codec``     compress an image to .lat bytes (decoding is decoder's).
"""
