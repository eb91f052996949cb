"""Where users run the notebooks: a fresh environment holding only the package (built from this checkout, no dev
extra), a kernel and Colab's own versions of the libraries we share, used from folders outside the repository.

Every notebook runs there top to bottom in quick mode, as "Run all" on a CPU runtime does; every notebook that has a
full
path (it branches on `QUICK`) runs again through it (`H2T_NB_QUICK=0`) as a fast dev run (`H2T_FAST_DEV_RUN=2`) against
CIFAR-10/100 written in torchvision's exact
on-disk layout (random pixels) and ImageNet-LT / Places-LT / iNaturalist list files over tiny JPEGs. Building the
environment takes about two minutes (torch comes from this machine's disk); the notebooks about twenty more.
"""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import THREADS, write_cifar

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(
    p
    for p in (ROOT / 'nbs').rglob('*.ipynb')
    if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT / 'nbs').parts)
)
GPU_NOTEBOOKS = {
    '02_fusion.ipynb',
    '05a_pipeline.ipynb',
    '06_train.ipynb',
}  # their `#| gpu` cells say they skipped on a CPU


def has_full_path(nb_path) -> bool:
    """Whether the notebook reads `QUICK` anywhere but the two header lines that set it: only then does its full path
    run other
    code than its quick path. Elsewhere the full-path run would repeat the quick run with less (a fast dev run skips the
    checks)."""
    import tokenize, io

    for cell in nbformat.read(nb_path, as_version=4).cells:
        if cell.cell_type != 'code':
            continue
        code = '\n'.join(
            l
            for l in cell.source.splitlines()
            if not l.startswith(('QUICK = ', 'QUICK, RUNS = notebook_mode(')) and not l.startswith(('%', '!'))
        )
        try:
            names = [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type == tokenize.NAME]
        except (tokenize.TokenError, IndentationError, SyntaxError):
            names = code.split()
        if 'QUICK' in names:
            return True
    return False


FULL_PATH_NBS = [nb for nb in NBS if has_full_path(nb)]

# Colab's GPU runtime, googlecolab/backend-info pip-freeze.gpu.txt (2026): the versions of the libraries h2t_nb shares
# with it. The tests install exactly these; pyproject's lower bounds must equal them (they are the versions we ran).
COLAB = {
    'fastcore': '1.13.2',
    'numpy': '2.0.2',
    'pandas': '2.2.2',
    'matplotlib': '3.10.0',
    'seaborn': '0.13.2',
    'scikit-learn': '1.6.1',
    'scipy': '1.16.3',
    'tqdm': '4.67.3',
    'filelock': '3.29.0',
    'ipykernel': '6.17.1',
}
KERNEL = 'h2t-colab'


def test_colab_versions_satisfy_the_requirements_and_older_ones_do_not():
    """pip keeps each library Colab ships (its version satisfies our requirement), and one release older is refused:
    the bound is the version the Colab-like environment below installs, so running there tests the bound."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']
    required = {(r := Requirement(d)).name: r.specifier for d in deps}
    shared = [name for name in COLAB if name in required]
    assert set(shared) == {'fastcore', 'numpy', 'matplotlib', 'seaborn', 'scikit-learn', 'scipy', 'tqdm', 'filelock'}
    for name in shared:
        v = Version(COLAB[name])
        older = Version(
            f'{v.major}.{v.minor}.{v.micro - 1}'
            if v.micro
            else f'{v.major}.{v.minor - 1}.999'
            if v.minor
            else f'{v.major - 1}.999'
        )
        assert required[name].contains(v) and not required[name].contains(older), (name, str(required[name]))


@pytest.fixture(scope='session')
def colab_env(tmp_path_factory):
    """A venv with the built wheel (and timm and datasets, which Colab ships), pandas and ipykernel at Colab's versions
    (no nbdev, no dev extra), and a kernelspec for it; built once for all pytest-xdist workers (its build writes in the
    checkout)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # this run's folder, which its workers share
    where = base / 'colab'
    with FileLock(f'{where}.lock'):
        if not (where / 'ready').is_file():
            build_colab_env(where)
    return where


def build_colab_env(where):
    where.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'wheel',
            '-q',
            '--no-deps',
            '--no-build-isolation',
            str(ROOT),
            '-w',
            str(where / 'wheel'),
        ],
        check=True,
        capture_output=True,
    )
    (where / 'constraints.txt').write_text(''.join(f'{name}=={version}\n' for name, version in COLAB.items()))
    subprocess.run([sys.executable, '-m', 'venv', str(where / 'env')], check=True)
    python = where / 'env' / 'bin' / 'python'
    wheel = next((where / 'wheel').glob('*.whl'))
    install = subprocess.run(
        [
            str(python),
            '-m',
            'pip',
            'install',
            '-q',
            f'{wheel}[timm,hf]',
            'pandas',
            'ipykernel',  # Colab ships timm and datasets (their versions unpinned here)
            '-c',
            str(where / 'constraints.txt'),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    spec = where / 'jupyter' / 'kernels' / KERNEL
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(
        json.dumps(
            dict(
                argv=[str(python), '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                display_name='Colab-like h2t_nb',
                language='python',
            )
        )
    )
    (where / 'ready').write_text('')


@pytest.fixture
def kernel_env(colab_env, monkeypatch, tmp_path):
    "What the kernel inherits: the kernelspec, a CPU runtime, the test run's threads, pytest's scratch as its /tmp."
    monkeypatch.setenv('JUPYTER_PATH', str(colab_env / 'jupyter'))
    monkeypatch.setenv('TMPDIR', str(tmp_path))  # the notebooks' temporary folders go where pytest cleans up
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    monkeypatch.setenv('OMP_NUM_THREADS', THREADS)
    monkeypatch.setenv('PYTHONWARNINGS', 'ignore')
    for name in ('IN_TEST', 'VIRTUAL_ENV', 'PYTHONPATH'):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def in_colab_env(colab_env, *args, cwd):
    "Run a command of the Colab-like environment from `cwd`."
    bin_dir = colab_env / 'env' / 'bin'
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'PYTHONPATH')}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}", CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS=THREADS, PYTHONWARNINGS='ignore'
    )
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.mark.rehearsal
def test_colab_env_has_colab_versions_and_no_dev_tools(colab_env, tmp_path):
    probe = (
        "import importlib.metadata as m, importlib.util as u, h2t_nb; "
        "print(h2t_nb.__file__); print({k: m.version(k) for k in %r}); print(u.find_spec('nbdev'))" % list(COLAB)
    )
    out = in_colab_env(colab_env, 'python', '-c', probe, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    location, versions, nbdev = out.stdout.splitlines()
    assert location.startswith(str(colab_env / 'env')), location  # the installed package, not the checkout
    assert eval(versions) == COLAB and nbdev == 'None'


@pytest.mark.rehearsal
def test_commands_run_in_colab_env(colab_env, tmp_path):
    "h2t-train's offline preset, and a fast dev run of h2t-table, with Colab's fastcore (whose own CLI API differs)."
    out = in_colab_env(colab_env, 'h2t-train', '--preset', 'offline', '--out', 'runs', cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = {
        (r['stage'], r['selection']): r
        for r in json.loads((tmp_path / 'runs' / 'offline' / 'results.json').read_text())['summary']
    }
    assert summary[('stage2', 'last')]['top1'] > 60  # the 10 digits, learnt
    out = in_colab_env(
        colab_env,
        'h2t-table',
        'digits100_lt_if100',
        '--rows',
        'dr',
        'dr_h2t',
        '--fast-dev-run',
        '1',
        '--out',
        'runs',
        cwd=tmp_path,
    )
    assert out.returncode == 0 and 'FAST DEV RUN' in out.stdout, out.stderr[-3000:]
    bad = in_colab_env(colab_env, 'h2t-train', '--preset', 'offline', '--data-dir', 'x', '--ratio', '2', cwd=tmp_path)
    assert (
        bad.returncode == 1
        and bad.stderr.strip().splitlines() == [bad.stderr.strip()]
        and 'Stage2Config.ratio=2.0' in bad.stderr
    )


def execute(nb_path, workdir, first_cell=None):
    """Copy the notebook alone into `workdir` (as a notebook opened from GitHub sees no sibling files) and run every
    cell in the Colab-like kernel."""
    nb = nbformat.read(nb_path, as_version=4)
    if first_cell:
        nb.cells.insert(0, nbformat.v4.new_code_cell(first_cell))
    nbformat.write(nb, workdir / nb_path.name)
    client = NotebookClient(nb, timeout=1200, kernel_name=KERNEL, resources={'metadata': {'path': str(workdir)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f'{nb_path.relative_to(ROOT)} failed in the Colab-like environment:\n{str(e)[-4000:]}')
    return ''.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))


@pytest.mark.rehearsal
@pytest.mark.parametrize('nb', NBS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_notebook_runs_in_colab_env(nb, kernel_env, tmp_path):
    """'Run all' on a CPU runtime: quick mode, every cell (GPU cells say they skipped), from a folder outside the
    repository."""
    kernel_env.setenv('H2T_NB_QUICK', '1')
    printed = execute(nb, tmp_path)
    if nb.name in GPU_NOTEBOOKS:
        assert 'skipped: this cell needs a CUDA GPU' in printed


def write_list_benchmark(root, name):
    """A few tiny JPEGs and the benchmark's list files (`relative/path label`), with sparse class ids in a long-tailed
    train split."""
    from PIL import Image
    from h2t_nb.data import LIST_FILES

    per_class = {'train': {7: 6, 3: 3, 11: 2}, 'val': {7: 2, 3: 2, 11: 2}, 'test': {7: 2, 3: 2, 11: 2}}
    for split, list_name in LIST_FILES[name].items():
        lines = []
        for label, n in per_class[split].items():
            for i in range(n):
                rel = Path(split) / str(label) / f'{i}.jpg'
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.new('RGB', (12, 10), color=(label * 20, i * 30, 90)).save(root / rel)
                lines.append(f'{rel.as_posix()} {label}')
        (root / list_name).write_text('\n'.join(lines) + '\n')


@pytest.fixture(scope='session')
def real_format_data(tmp_path_factory):
    """CIFAR-10 and CIFAR-100 at full size in torchvision's on-disk layout (random pixels) and the three list-file
    benchmarks."""
    data = tmp_path_factory.mktemp('real_format') / 'data'
    write_cifar(data, 100, per_class_train=500, per_class_test=100)
    write_cifar(data, 10, per_class_train=5000, per_class_test=1000)
    for name in ('imagenet_lt', 'places_lt', 'inat2018'):
        write_list_benchmark(data / name, name)
    write_hub_copy(data / 'hub' / 'nelorth--oxford-flowers')
    return data


def write_hub_copy(folder):
    "A stand-in for the own-data tutorial's hub dataset: real digit images with an image and a ClassLabel column."
    import datasets
    from h2t_nb.own_data import scan_split, write_digit_folder

    scan = scan_split(write_digit_folder(folder.parent / 'images', dict(a=40, b=20, c=9)), 'train')
    rows = [(dict(bytes=p.read_bytes(), path=None), i) for i, ps in enumerate(scan.files.values()) for p in ps]
    features = datasets.Features(image=datasets.Image(), label=datasets.ClassLabel(names=list(scan.files)))
    train = datasets.Dataset.from_dict(dict(image=[r[0] for r in rows], label=[r[1] for r in rows]), features=features)
    datasets.DatasetDict(train=train, test=train.select(range(0, len(train), 3))).save_to_disk(str(folder))


# Only torchvision's md5 check is skipped, in the kernel and by the test: the files above are CIFAR's format, not its
# bytes.
SKIP_MD5 = (
    "import os as _os, torchvision.datasets.cifar as _cifar\n"
    "_cifar.check_integrity = lambda path, md5=None: _os.path.isfile(path)"
)
# Nothing here reaches the Hugging Face hub: for the own-data tutorial, a hub name reads its local copy under data/hub/
# (written above with save_to_disk), and timm builds the pretrained model's architecture with random weights. Every
# other line of the full path runs as on Colab.
NO_HUB = (
    "import datasets as _datasets, timm as _timm\n"
    "_datasets.load_dataset = lambda name, **kw: _datasets.load_from_disk('data/hub/' + name.replace('/', '--'))\n"
    "_create = _timm.create_model\n"
    "_timm.create_model = lambda *a, pretrained=False, **kw: _create(*a, pretrained=False, **kw)"
)


def reads_quick(nb_path) -> bool:
    "Whether any code cell but the header that sets QUICK loads its value, found with Python's own parser."
    import ast

    for cell in nbformat.read(nb_path, as_version=4).cells:
        if cell.cell_type != 'code' or 'notebook_mode(QUICK' in cell.source:
            continue
        code = '\n'.join('pass' if line.lstrip().startswith(('%', '!')) else line for line in cell.source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        if any(isinstance(n, ast.Name) and n.id == 'QUICK' and isinstance(n.ctx, ast.Load) for n in ast.walk(tree)):
            return True
    return False


@pytest.mark.parametrize('nb', NBS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_full_path_runs_where_a_notebook_has_one(nb):
    "A notebook whose code reads QUICK has a full path and gets the rehearsal; one that only sets it does not."
    assert (nb in FULL_PATH_NBS) == reads_quick(nb)


@pytest.mark.rehearsal
@pytest.mark.parametrize('nb', FULL_PATH_NBS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_notebook_full_path_in_colab_env(nb, kernel_env, real_format_data, tmp_path):
    """Every cell a GPU user would run, QUICK forced to False, as a fast dev run on the real-format data: the presets'
    real models and data code."""
    kernel_env.setenv('H2T_NB_QUICK', '0')
    kernel_env.setenv('H2T_FAST_DEV_RUN', '2')
    (tmp_path / 'data').symlink_to(real_format_data, target_is_directory=True)
    printed = execute(nb, tmp_path, SKIP_MD5 + ('\n' + NO_HUB if nb.name == 'own_data_h2t.ipynb' else ''))
    expected = {
        '00_data.ipynb': [
            'imagenet_lt: 11 training images in 3 classes',
            'places_lt: 11 training images',
            'inat2018: 11 training images',
        ],
        '06_train.ipynb': ['cifar100_lt_if100_dr_h2t: cifar100 IF=100, model resnet32'],
        '08_table.ipynb': ['cifar100_lt_if100: cifar100 IF=100, resnet32, seeds [0, 1, 2]'],
        'cifar100_lt_h2t.ipynb': ['CIFAR100-LT IF=100 train: 10,847 training images, 100 classes'],
        'own_data_h2t.ipynb': [
            '3 classes, 69 training images at 224×224, in memory',
            'hf_timm: hf, timm:resnet18.a1_in1k, seeds [0, 1, 2]',
            'verdict (a fast dev run: the numbers mean nothing):',
        ],
    }.get(nb.name, [])
    for text in expected:
        assert text in printed, f'{nb.name}: the full path did not print {text!r}'
    if nb.name in ('06_train.ipynb', '08_table.ipynb', 'cifar100_lt_h2t.ipynb', 'own_data_h2t.ipynb'):
        assert 'skipped in a fast dev run' in printed and (tmp_path / 'runs').is_dir()
