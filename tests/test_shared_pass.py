"""The shared backbone pass from the shell: a table's grouped rows equal the same rows trained alone, also after kill -9
inside the group."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import THREADS
import torch

from h2t_nb.shared_pass import same_checkpoint, same_training

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'OMP_NUM_THREADS': THREADS, 'PYTHONWARNINGS': 'ignore'}
ROWS = [
    'dr',
    'no_fusion',
    'dr_h2t',
    'whole_swap',
    'mislas',
    'mislas_h2t',
]  # one pass of four kinds, led by the one-stream dr
EPOCHS2 = 3  # enough to kill a group between its epochs
ARGS = ['digits100_lt_if100', '--rows', *ROWS, '--epochs1', '1', '--epochs2', str(EPOCHS2)]
TABLE = 'digits100_lt_if100-table'


def table(*args, cwd, shared=True, wait=True):
    exe = shutil.which('h2t-table', path=str(BIN)) or 'h2t-table'
    args = [*args] if shared else [*args, '--rows-alone']
    if not wait:
        return subprocess.Popen([exe, *args], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def row_report(table_dir, row):
    return json.loads((table_dir / 'seed0' / row / 'report.json').read_text())


def assert_rows_identical(a_dir, b_dir):
    for row in ROWS:
        a, b = row_report(a_dir, row), row_report(b_dir, row)
        assert same_training({**a, 'shared_pass': None}, {**b, 'shared_pass': None}), row
        for name in ('final.pt', 'best.pt'):
            assert same_checkpoint(a_dir / 'seed0' / row / name, b_dir / 'seed0' / row / name), (row, name)


@pytest.fixture(scope='module')
def alone(tmp_path_factory):
    "The reference: the same table with every row in its own backbone pass (--rows-alone)."
    root = tmp_path_factory.mktemp('alone')
    out = table(*ARGS, '--out', 'alone', cwd=root, shared=False)
    assert 'one backbone pass' not in out.stdout
    return root / 'alone' / TABLE


@pytest.mark.rehearsal
@pytest.mark.xdist_group('alone')  # one worker trains the reference table for both
def test_grouped_rows_equal_rows_alone(alone, tmp_path):
    out = table(*ARGS, '--out', 'grouped', cwd=tmp_path)
    assert 'seed 0: one backbone pass for rows dr, no_fusion, dr_h2t, whole_swap, mislas, mislas_h2t' in out.stdout
    grouped = tmp_path / 'grouped' / TABLE
    assert row_report(grouped, 'dr')['shared_pass'] == row_report(grouped, 'mislas_h2t')['shared_pass'] == ROWS
    assert_rows_identical(grouped, alone)
    a, b = (json.loads((d / 'table.json').read_text()) for d in (grouped, alone))
    assert a['summary'] == b['summary'] and a['paired'] == b['paired']


@pytest.mark.rehearsal
@pytest.mark.xdist_group('alone')  # one worker trains the reference table for both
def test_kill_9_inside_a_grouped_stage_2_resumes_exactly(alone, tmp_path):
    """kill -9 once a grouped row has saved an epoch of stage 2 and before the group ends; the resumed table equals the
    uninterrupted one."""
    proc = table(*ARGS, '--out', 'half', cwd=tmp_path, wait=False)
    half = tmp_path / 'half' / TABLE
    deadline = time.time() + 600

    def saved_epochs(row):
        last = half / 'seed0' / row / 'last.pt'
        try:
            return torch.load(last, weights_only=True)['epoch'] + 1 if last.exists() else 0
        except Exception:
            return 0  # being renamed into place

    while saved_epochs('dr_h2t') < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert 1 <= saved_epochs('dr_h2t') < EPOCHS2 and not (half / 'seed0' / 'whole_swap' / 'final.pt').exists(), (
        'not killed inside the grouped stage 2'
    )
    table('digits100_lt_if100', '--resume', str(half), cwd=tmp_path)
    assert_rows_identical(half, alone)


def test_rows_alone_is_a_runtime_flag_that_a_resume_may_change(tmp_path):
    "--rows-alone trains every row in its own pass; on --resume it is applied and said, like --device."
    exe = shutil.which('h2t-table', path=str(BIN)) or 'h2t-table'
    args = ['digits100_lt_if100', '--rows', 'dr', 'dr_h2t', '--fast-dev-run', '1']
    out = subprocess.run([exe, *args, '--out', 'shared'], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert out.returncode == 0 and 'seed 0: one backbone pass for rows dr, dr_h2t' in out.stdout, out.stderr[-2000:]
    folder = tmp_path / 'shared' / TABLE
    assert row_report(folder, 'dr')['shared_pass'] == ['dr', 'dr_h2t']
    more = subprocess.run(
        [exe, '--resume', str(folder), '--seeds', '0', '1', '--rows-alone'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert more.returncode == 0 and 'resume: rows_alone False -> True' in more.stdout, more.stderr[-2000:]
    assert 'one backbone pass' not in more.stdout
    seed1 = json.loads((folder / 'seed1' / 'dr' / 'report.json').read_text())
    assert seed1['shared_pass'] == [] and row_report(folder, 'dr')['shared_pass'] == ['dr', 'dr_h2t']
