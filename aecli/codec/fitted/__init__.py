"""The fitted codec: one image coded as a pyramid of latent planes, a small autoregressive entropy
model (ARM) and a small synthesis network, all fitted to that image at encode time.

Modules, one job each:

* ``header``    the structure record at the head of a fitted file (standard library only);
* ``laplace``   the Laplace probability model: training likelihood and the integer tables;
* ``context``   which latents the ARM sees, for training (whole planes) and decoding (one phase);
* ``nets``      the ARM and synthesis networks, and their parameters as integers;
* ``kernels``   fast CPU forms of their hot parts: aligned upsampling, chunked MLPs, fused bits;
* ``stream``    range coding of parameters and latents, phase by phase (constriction);
* ``fit``       the fitting loop (Adam on rate + lambda * MSE);
* ``codec``     compress an image to .lat bytes and back.
"""
