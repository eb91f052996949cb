"The project's own promises: package in sync with the notebooks, README generated and holding its two commands, CI runs them."
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_package_equals_notebook_export(tmp_path):
    "Export a copy of the notebooks and compare with the committed h2t_nb/: a hand edit or a forgotten export fails here."
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


def test_ci_runs_the_readme_test_command():
    "What .ci/run extracts from README.md is exactly README's second command, and running it is .ci/run's last step."
    ci = (ROOT / '.ci' / 'run').read_text()
    extractor = re.search(r"python3 - <<'PY'\n(.*?)\nPY\n", ci, flags=re.S).group(1)
    out = subprocess.run([sys.executable, '-c', extractor], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == readme_commands()[1]
    assert [l for l in ci.splitlines() if l.strip()][-1] == 'bash -c "$test_command"'


def test_main_command_runs(tmp_path):
    "README's main job as written, minus the install that the test environment already did."
    main = readme_commands()[0].split('&&')[-1].strip().replace('.venv/bin/', '')
    exe = shutil.which(main.split()[0], path=str(BIN)) or shutil.which(main.split()[0])
    out = subprocess.run([exe, *main.split()[1:]], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert 'stage2' in out.stdout and 'paper_few' in out.stdout and 'results, checkpoints and plots: runs/offline' in out.stdout
    assert (tmp_path / 'runs' / 'offline' / 'results.json').is_file() and (tmp_path / 'runs' / 'offline' / 'results.csv').is_file()


def test_readme_evidence_table_matches_the_notebook_run():
    "The README's offline evidence table must be the numbers the 06_train sweep printed (its saved output)."
    import ast
    import nbformat
    nb = nbformat.read(ROOT / 'nbs' / '06_train.ipynb', as_version=4)
    printed = [ast.literal_eval(line) for c in nb.cells for o in c.get('outputs', [])
               if o.get('output_type') == 'stream' and o['name'] == 'stdout' for line in o['text'].splitlines() if line.startswith("{'variant'")]
    assert len(printed) == 7
    readme = (ROOT / 'README.md').read_text()
    for row in printed:
        cells = f"| {row['top1']} | {row['paper_many']} | {row['paper_medium']} | {row['paper_few']} |"
        assert cells in readme, f'README lacks the measured row for {row["variant"]}: {cells}'
