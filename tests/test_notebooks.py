"Run every notebook with nbdev's runner, skipping the cells flagged like `tst_flags` in pyproject.toml."

from pathlib import Path

import pytest
from nbdev.config import get_config
import nbdev.test as nbtest  # not `from nbdev.test import test_nb`: pytest would collect that name as a test

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(
    p
    for p in (ROOT / 'nbs').rglob('*.ipynb')
    if not any(part.startswith(('_', '.')) for part in p.relative_to(ROOT / 'nbs').parts)
)
SKIP = get_config(path=ROOT).tst_flags.split()


def test_runner_skips_flagged_cells_and_runs_the_rest(tmp_path):
    "Flagged cells (slow, gpu, notest) would fail here: the runner, with our flags, skips them and runs the rest."
    import nbformat

    flagged = [
        nbformat.v4.new_code_cell(f'#| {flag}\nraise RuntimeError("the {flag} cell ran")')
        for flag in ('slow', 'gpu', 'notest')
    ]
    plain = nbformat.v4.new_code_cell("from pathlib import Path; Path('ran.txt').write_text('yes')")
    nbformat.write(nbformat.v4.new_notebook(cells=[*flagged, plain]), tmp_path / 'flags.ipynb')
    assert nbtest.test_nb(tmp_path / 'flags.ipynb', skip_flags=SKIP, basepath=ROOT)[0]
    assert (tmp_path / 'ran.txt').read_text() == 'yes'  # it ran in the notebook's own folder
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('raise RuntimeError("plain")')])
    nbformat.write(bad, tmp_path / 'bad.ipynb')
    assert not nbtest.test_nb(tmp_path / 'bad.ipynb', skip_flags=SKIP, basepath=ROOT)[0]  # an unflagged failure fails


# each trains a multi-seed table (two to three minutes on two cores): the rehearsal tier runs them, so that README's
# test command stays within ten minutes
TABLE_NOTEBOOKS = ('08_table.ipynb', 'own_data_h2t.ipynb')
NOTEBOOK_PARAMS = [pytest.param(nb, marks=[pytest.mark.rehearsal] if nb.name in TABLE_NOTEBOOKS else []) for nb in NBS]


@pytest.mark.parametrize('nb', NOTEBOOK_PARAMS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_notebook(nb, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))  # the notebooks' temporary folders: pytest removes them
    ok, _ = nbtest.test_nb(nb, skip_flags=SKIP, basepath=ROOT)
    assert ok, f'{nb.name} failed: run `nbdev-test {nb.relative_to(ROOT)} --do-print` to see the failing cell'


def colab_cell(nb):
    import nbformat

    return next(
        c.source
        for c in nbformat.read(nb, as_version=4).cells
        if c.cell_type == 'code' and "'google.colab' in sys.modules" in c.source
    )


COLAB_NBS = [nb for nb in NBS if nb.name not in ('index.ipynb', 'results.ipynb')]


@pytest.mark.parametrize('released', [True, False], ids=['released', 'before-release'])
@pytest.mark.parametrize('nb', COLAB_NBS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_colab_cell_installs_the_matching_package(nb, released, monkeypatch):
    "The install cell asks pip for this package version; without a release it installs the repository instead."
    import subprocess, sys, types
    from h2t_nb import __version__

    calls = []

    def fake_run(cmd, check=False, **kw):
        calls.append(cmd)
        return types.SimpleNamespace(returncode=0 if (released or cmd[3] == 'install') else 1)

    monkeypatch.setattr(subprocess, 'run', fake_run)
    monkeypatch.setitem(sys.modules, 'google.colab', types.ModuleType('google.colab'))
    source = colab_cell(nb)
    assert source.startswith('#| hide\n')  # kept in the notebook, hidden on the site
    exec(source, {})
    assert calls[0][3:] == ['download', '-q', '--no-deps', '-d', '/tmp/h2t_nb_release', f'h2t_nb=={__version__}']
    expected = f'h2t_nb=={__version__}' if released else 'h2t_nb @ git+https://github.com/h2t-nb/h2t_nb@main'
    assert calls[1] == [sys.executable, '-m', 'pip', 'install', '-q', expected]


def test_colab_cell_does_nothing_elsewhere(monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, 'run', lambda *a, **k: pytest.fail('pip ran outside Colab'))
    exec(colab_cell(COLAB_NBS[0]), {})
