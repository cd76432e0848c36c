"""The package's layers hold: no module imports one above it (``.importlinter``).

Every import counts, those inside functions and under ``if TYPE_CHECKING:`` too, so
an import circle cannot come back hidden in a function.
"""

from __future__ import annotations

import os

import pytest

from tests.support import ROOT

importlinter_cli = pytest.importorskip("importlinter.cli")


def test_no_module_imports_a_layer_above_it(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = importlinter_cli.lint_imports(
        config_filename=os.path.join(ROOT, ".importlinter"), no_cache=True, no_logo=True
    )
    report = capsys.readouterr().out
    assert code == 0, report
    assert " 0 broken" in report
