"""The house rules of docs/architecture.md hold (measured by tools/architecture.py): imports go down
the floors only, no import circle, no private name imported across modules, no function over 80
lines and no class over 250; and the modules that must work without torch import none of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import architecture

ROOT = Path(__file__).resolve().parents[1]
MODULES = architecture.modules(ROOT)


def test_every_module_is_on_a_floor():
    for name in MODULES:
        architecture.floor(name)


def test_imports_go_down_the_floors_only():
    assert architecture.upward_imports(MODULES) == []


def test_no_import_circle():
    assert architecture.circles(MODULES) == []


def test_no_private_name_imported_across_modules():
    assert architecture.private_imports(MODULES) == []


def test_no_function_over_80_lines_and_no_class_over_250():
    assert architecture.long_definitions(MODULES) == []


def test_the_checks_can_fail(tmp_path):
    """The rules catch what they are for, on a made-up package."""
    pkg = tmp_path / "aecli"
    (pkg / "codec").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "codec" / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from .codec.api import _helper\n")  # upward, private
    (pkg / "codec" / "api.py").write_text("from ..errors import x\n\n\ndef long():\n" + "    pass\n" * 90)
    mods = architecture.modules(tmp_path)
    assert len(architecture.upward_imports(mods)) == 1
    assert len(architecture.private_imports(mods)) == 1
    assert architecture.circles(mods) == ["aecli.codec.api -> aecli.errors -> aecli.codec.api"]
    assert [w.split()[-1] for _, w in architecture.long_definitions(mods)] == ["long()"]


@pytest.mark.parametrize("module", ["aecli.cli", "aecli.format", "aecli.inspection", "aecli.codec.decoding",
                                    "aecli.codec.numpy_decoder", "aecli.codec.fitted.header", "aecli.codec.fitted.decoder", "aecli.batch",
                                    "aecli.images.decode", "aecli.registry"])
def test_modules_that_work_without_torch_do_not_import_it(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
