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


GPU_NOTEBOOKS = {'02_fusion.ipynb', '05a_pipeline.ipynb', '06_train.ipynb'}


@pytest.mark.slow
@pytest.mark.parametrize('nb', NBS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_run_all_on_a_cpu_runtime(nb, tmp_path):
    "What 'Run all' does on a CPU-only Colab runtime: every cell, every flag, top to bottom; GPU cells say they skipped."
    import os, subprocess, sys
    import nbformat
    jupyter = Path(sys.executable).parent / 'jupyter'
    env = {**os.environ, 'IN_TEST': '1', 'CUDA_VISIBLE_DEVICES': '', 'OMP_NUM_THREADS': '2'}   # IN_TEST: the export cell does nothing
    out = subprocess.run([str(jupyter), 'nbconvert', '--to', 'notebook', '--execute', '--ExecutePreprocessor.timeout=900',
                          '--output-dir', str(tmp_path), str(nb)], capture_output=True, text=True, env=env, cwd=nb.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    executed = nbformat.read(tmp_path / nb.name, as_version=4)
    printed = ''.join(o.get('text', '') for c in executed.cells if c.cell_type == 'code' for o in c.get('outputs', []))
    if nb.name in GPU_NOTEBOOKS: assert 'skipped: this cell needs a CUDA GPU' in printed
