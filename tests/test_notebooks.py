"Run every notebook with nbdev's runner, skipping the cells flagged like `tst_flags` in pyproject.toml."
from pathlib import Path

import pytest
from nbdev.config import get_config
import nbdev.test as nbtest   # not `from nbdev.test import test_nb`: pytest would collect that name as a test

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb')
             if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts))
SKIP = get_config(path=ROOT).tst_flags.split()


def test_skip_flags_include_slow_and_gpu():
    assert {'notest', 'slow', 'gpu'} <= set(SKIP)


@pytest.mark.parametrize('nb', NBS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_notebook(nb):
    ok, _ = nbtest.test_nb(nb, skip_flags=SKIP, basepath=ROOT)
    assert ok, f'{nb.name} failed: run `nbdev-test {nb.relative_to(ROOT)} --do-print` to see the failing cell'
