"""A codec model's files -> the torch model and its tensors, checked, on a device.

The checks (checks.py) bound the architecture and the tensors before anything is built or read
beyond them; the float transforms are loaded into the model built from its architecture
(model.py); the integer tables and networks stay in the tensors, for the latent coding of the
model's kind (factorized.py, hyperprior.py, checkerboard.py) to read.
"""

from __future__ import annotations

import torch

from .. import registry
from ..errors import UserError
from . import checks
from .model import build
from .transforms import ANALYSIS_LAYOUT, SYNTHESIS_LAYOUT


def load(files: registry.ModelFiles, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict, torch.device]:
    """(model, tensors, device): the model of `files` in eval mode on `device`, its transforms in
    their memory layouts (transforms.py), and every tensor of its weights file."""
    arch = checks.check_files(files)  # bounded and consistent before anything is built or read
    tensors = registry.load_tensors(files)
    model = build(arch)
    if not files.bundled:  # (bundled weights are checked by their fingerprint, in load_tensors)
        checks.check_tensors(files, tensors, model)
    state = {k: v for k, v in tensors.items() if not k.startswith(("tables.", "int."))}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"model '{files.name}': weights do not match its architecture ({str(exc).splitlines()[0]})") from None
    device = torch.device(device)
    model.eval().to(device)
    model.g_a.to(memory_format=ANALYSIS_LAYOUT)
    model.g_s.to(memory_format=SYNTHESIS_LAYOUT)
    return model, tensors, device
