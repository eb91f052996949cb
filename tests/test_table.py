"h2t-table from the shell: the paper's table on Digits-100-LT, its files, resume, and every refusal before any work."
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from h2t_nb.table import paired_interval

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '2', 'PYTHONWARNINGS': 'ignore'}


def cli(*args, cwd):
    return subprocess.run([shutil.which('h2t-table', path=str(BIN)) or 'h2t-table', *args], cwd=cwd, capture_output=True, text=True, env=ENV)


def test_table_on_digits100_prints_paired_rows_and_writes_files(tmp_path):
    out = cli('digits100_lt_if100', '--seeds', '0', '1', '--rows', 'dr', 'dr_h2t', 'whole_swap', '--epochs1', '2', '--epochs2', '1',
              '--out', 'res', cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    table_dir = tmp_path / 'res' / 'digits100_lt_if100-table'
    assert {'table.csv', 'paired.csv', 'table.json', 'table.png', 'table_config.json'} <= {p.name for p in table_dir.iterdir()}
    lines = out.stdout.splitlines()
    assert any(l.startswith('DR + H2T ρ=0.25') and '47.80' in l for l in lines)   # this run beside the paper's number
    assert 'Δtop1 vs DR [95% CI]' in out.stdout and 'paper protocol (selected on test: optimistic)' in out.stdout
    saved = json.loads((table_dir / 'table.json').read_text())
    diffs = {d['row']: d for d in saved['paired']['last']}
    per_seed = saved['per_seed']
    expected = [per_seed[s]['dr_h2t']['last']['top1'] - per_seed[s]['dr']['last']['top1'] for s in ('0', '1')]
    assert diffs['dr_h2t']['top1'] == pytest.approx(sum(expected) / 2)
    assert (diffs['dr_h2t']['top1_low'], diffs['dr_h2t']['top1_high']) == pytest.approx(paired_interval(expected)[1:])
    # stage 1 was trained once per seed and every row started from it
    for s in ('seed0', 'seed1'):
        assert sorted(p.name for p in (table_dir / s).iterdir()) == ['dr', 'dr_h2t', 'stage1', 'whole_swap']
    csv_rows = (table_dir / 'table.csv').read_text().splitlines()
    assert csv_rows[0].startswith('row,seeds,top1') and len(csv_rows) == 1 + 4 + 4 + 3   # last, best_val: 4 rows; best_test: 3


def test_resume_finishes_an_interrupted_table_without_retraining(tmp_path):
    out = cli('digits100_lt_if100', '--rows', 'dr', '--epochs1', '1', '--epochs2', '1', '--out', 'res', cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    table_dir = tmp_path / 'res' / 'digits100_lt_if100-table'
    stage1 = (table_dir / 'seed0' / 'stage1' / 'final.pt').stat().st_mtime_ns
    shutil.rmtree(table_dir / 'seed0' / 'dr')   # as if killed before the row was trained
    again = cli('--resume', str(table_dir), 'digits100_lt_if100', cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (table_dir / 'seed0' / 'dr' / 'report.json').is_file()
    assert (table_dir / 'seed0' / 'stage1' / 'final.pt').stat().st_mtime_ns == stage1   # stage 1 was not trained again


@pytest.mark.parametrize('args, message', [
    (['cifar100_lt'], "unknown table family 'cifar100_lt'"),
    (['digits100_lt_if100', '--rows', 'dr', 'h2t'], "unknown rows ['h2t']"),
    (['digits100_lt_if100', '--epochs1', '0'], '--epochs1 0: train at least 1 epoch'),
    (['cifar100_lt_if100', '--data-dir', 'nowhere'], 'CIFAR100 not found'),
    (['cifar100_lt_if100'], 'needs a data folder'),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, args, message):
    out = cli(*args, '--out', 'res', cwd=tmp_path)
    assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'res').exists()


def test_fast_dev_table_trains_every_row_for_n_batches(tmp_path):
    out = cli('digits100_lt_if100', '--rows', 'dr', 'dr_h2t', '--fast-dev-run', '1', '--out', 'res', cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'FAST DEV RUN' in out.stdout
    saved = json.loads((tmp_path / 'res' / 'digits100_lt_if100-table' / 'table.json').read_text())
    for row in ('stage1', 'dr', 'dr_h2t'):
        assert [(h['epoch'], h['steps']) for h in saved['per_seed']['0'][row]['history']] == [(1, 1)]


def test_a_copied_half_finished_table_resumes_to_the_same_numbers(tmp_path):
    "kill -9 inside stage 1, the folder copied elsewhere and the original deleted: resuming the copy gives the uninterrupted table."
    args = ['digits100_lt_if100', '--rows', 'dr', 'dr_h2t', '--epochs1', '4', '--epochs2', '1']
    assert cli(*args, '--out', 'whole', cwd=tmp_path).returncode == 0
    exe = shutil.which('h2t-table', path=str(BIN)) or 'h2t-table'
    proc = subprocess.Popen([exe, *args, '--out', 'half'], cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    half = tmp_path / 'half' / 'digits100_lt_if100-table'
    deadline = time.time() + 300
    while not (half / 'seed0' / 'stage1' / 'last.pt').exists() and time.time() < deadline and proc.poll() is None: time.sleep(0.05)
    proc.kill(); proc.wait()
    assert not (half / 'seed0' / 'stage1' / 'final.pt').exists(), 'the table finished stage 1 before it could be killed'
    moved = tmp_path / 'elsewhere' / 'table'
    shutil.copytree(half, moved); shutil.rmtree(tmp_path / 'half')
    again = cli('digits100_lt_if100', '--resume', str(moved), cwd=tmp_path / 'elsewhere')
    assert again.returncode == 0, again.stderr[-2000:]
    whole = json.loads((tmp_path / 'whole' / 'digits100_lt_if100-table' / 'table.json').read_text())
    resumed = json.loads((moved / 'table.json').read_text())
    assert resumed['summary'] == whole['summary'] and resumed['paired'] == whole['paired']
