"h2t-table from the shell: the paper's table on Digits-100-LT, its files, resume, and every refusal before any work."

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import command_env, run_command

from h2t_nb.reports import paired_interval

BIN = Path(sys.executable).parent
ENV = command_env()


def cli(*args, cwd):
    return run_command('h2t-table', *args, cwd=cwd, env=ENV)


def test_table_on_digits100_prints_paired_rows_and_writes_files(tmp_path):
    out = cli(
        'digits100_lt_if100',
        '--seeds',
        '0',
        '1',
        '--rows',
        'dr',
        'dr_h2t',
        'whole_swap',
        '--epochs1',
        '2',
        '--epochs2',
        '1',
        '--out',
        'res',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    table_dir = tmp_path / 'res' / 'digits100_lt_if100-table'
    assert {'table.csv', 'paired.csv', 'table.json', 'table.png', 'plan.json'} <= {p.name for p in table_dir.iterdir()}
    lines = out.stdout.splitlines()
    assert any(l.startswith('DR + H2T ρ=0.25') and '47.80' in l for l in lines)  # this run beside the paper's number
    assert 'Δtop1 vs DR [95% CI]' in out.stdout and 'Δtop1 vs no fusion [95% CI]' in out.stdout
    assert 'paper protocol' not in out.stdout  # no test pass every epoch unless --paper-protocol
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
    assert (
        csv_rows[0].startswith('row,seeds,top1') and len(csv_rows) == 1 + 4 + 4
    )  # last, best_val: 4 rows each (stage 1 and the three rows)
    paired = (table_dir / 'paired.csv').read_text().splitlines()
    assert (
        paired[0].startswith('row,baseline,seeds,top1') and len(paired) == 1 + 2 * 2
    )  # dr_h2t and whole_swap vs DR, per selection (no control row)


def test_resume_finishes_an_interrupted_table_without_retraining(tmp_path):
    out = cli('digits100_lt_if100', '--rows', 'dr', '--epochs1', '1', '--epochs2', '1', '--out', 'res', cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    table_dir = tmp_path / 'res' / 'digits100_lt_if100-table'
    stage1 = (table_dir / 'seed0' / 'stage1' / 'final.pt').stat().st_mtime_ns
    shutil.rmtree(table_dir / 'seed0' / 'dr')  # as if killed before the row was trained
    again = cli('--resume', str(table_dir), cwd=tmp_path)  # no family needed: the folder's plan names it
    assert again.returncode == 0, again.stderr[-2000:]
    assert (table_dir / 'seed0' / 'dr' / 'report.json').is_file()
    assert (table_dir / 'seed0' / 'stage1' / 'final.pt').stat().st_mtime_ns == stage1  # stage 1 was not trained again


@pytest.mark.parametrize(
    'args, message',
    [
        (['cifar100_lt'], "unknown table family 'cifar100_lt'"),
        (['digits100_lt_if100', '--rows', 'dr', 'h2t'], "unknown rows ['h2t']"),
        (['digits100_lt_if100', '--epochs1', '0'], 'Stage1Config.epochs=0 is not accepted: use an integer >= 1'),
        (['cifar100_lt_if100', '--data-dir', 'nowhere'], 'CIFAR100 not found'),
        (['cifar100_lt_if100'], 'needs a data folder'),
    ],
)
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


@pytest.mark.rehearsal
def test_a_copied_half_finished_table_resumes_to_the_same_numbers(tmp_path):
    """kill -9 inside stage 1, the folder copied elsewhere and the original deleted: resuming the copy gives the
    uninterrupted table."""
    args = [
        'digits100_lt_if100',
        '--rows',
        'dr',
        'dr_h2t',
        '--epochs1',
        '2',
        '--epochs2',
        '1',
    ]  # killed after stage 1's first epoch
    assert cli(*args, '--out', 'whole', cwd=tmp_path).returncode == 0
    exe = shutil.which('h2t-table', path=str(BIN)) or 'h2t-table'
    proc = subprocess.Popen(
        [exe, *args, '--out', 'half'], cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    half = tmp_path / 'half' / 'digits100_lt_if100-table'
    deadline = time.time() + 300
    while not (half / 'seed0' / 'stage1' / 'last.pt').exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not (half / 'seed0' / 'stage1' / 'final.pt').exists(), 'the table finished stage 1 before it could be killed'
    moved = tmp_path / 'elsewhere' / 'table'
    shutil.copytree(half, moved)
    shutil.rmtree(tmp_path / 'half')
    again = cli('digits100_lt_if100', '--resume', str(moved), cwd=tmp_path / 'elsewhere')
    assert again.returncode == 0, again.stderr[-2000:]
    whole = json.loads((tmp_path / 'whole' / 'digits100_lt_if100-table' / 'table.json').read_text())
    resumed = json.loads((moved / 'table.json').read_text())
    assert resumed['summary'] == whole['summary'] and resumed['paired'] == whole['paired']


@pytest.mark.rehearsal
def test_resume_with_more_seeds_trains_only_the_new_ones(tmp_path):
    "h2t-table --resume DIR --seeds 0 1 2 on a one-seed table trains seeds 1 and 2 and reads seed 0 back."
    assert (
        cli(
            'digits100_lt_if100', '--rows', 'dr', '--epochs1', '1', '--epochs2', '1', '--out', 'res', cwd=tmp_path
        ).returncode
        == 0
    )
    table_dir = tmp_path / 'res' / 'digits100_lt_if100-table'
    seed0 = {p: p.stat().st_mtime_ns for p in (table_dir / 'seed0').rglob('*') if p.is_file()}
    out = cli('--resume', str(table_dir), '--seeds', '0', '1', '2', cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'resume: seeds [1, 2] added to [0]' in out.stdout
    assert {
        p: p.stat().st_mtime_ns for p in (table_dir / 'seed0').rglob('*') if p.is_file()
    } == seed0  # not trained again
    saved = json.loads((table_dir / 'table.json').read_text())
    assert sorted(saved['per_seed']) == ['0', '1', '2'] and json.loads((table_dir / 'plan.json').read_text())[
        'seeds'
    ] == [0, 1, 2]
    one_line_failure(
        cli('--resume', str(table_dir), '--seeds', '1', '2', cwd=tmp_path), 'seeds can be added, not dropped'
    )
    one_line_failure(
        cli('--resume', str(table_dir), '--fast-dev-run', '1', cwd=tmp_path),
        '--fast-dev-run would change what it trains',
    )
    one_line_failure(
        cli('cifar100_lt_if100', '--resume', str(table_dir), cwd=tmp_path),
        'holds a digits100_lt_if100 table, not cifar100_lt_if100',
    )


def test_a_second_writer_on_a_table_folder_is_refused(tmp_path):
    """The table takes its folder's lock like a run: a second h2t-table on the same folder is refused and touches
    nothing."""
    from filelock import FileLock

    assert (
        cli('digits100_lt_if100', '--rows', 'dr', '--fast-dev-run', '1', '--out', 'res', cwd=tmp_path).returncode == 0
    )
    table_dir = tmp_path / 'res' / 'digits100_lt_if100-table'
    with FileLock(table_dir / '.lock'):
        (table_dir / '.lock').write_text('pid 4242 on another-host')
        before = {p: p.read_bytes() for p in table_dir.rglob('*') if p.is_file() and p.name != '.lock'}
        one_line_failure(
            cli('--resume', str(table_dir), '--seeds', '0', '1', cwd=tmp_path),
            'is being written by another process (pid 4242 on another-host)',
        )
        assert {p: p.read_bytes() for p in table_dir.rglob('*') if p.is_file() and p.name != '.lock'} == before


def test_a_cached_row_trained_with_another_configuration_is_refused(tmp_path):
    """A stage's report.json carries what it trained; the same row name asked with another ratio is refused by field,
    not read back."""
    from dataclasses import replace
    from h2t_nb.presets import PRESETS
    from h2t_nb.table import train_table

    base = replace(PRESETS['offline'], fast_dev_run=1)
    row = base.stage2
    train_table(base, {'h2t': row}, [0], tmp_path / 't', quiet=True)
    with pytest.raises(ValueError, match=r"was trained with another configuration \(stage2.ratio 0.3 -> 0.5\)"):
        train_table(base, {'h2t': replace(row, ratio=0.5)}, [0], tmp_path / 't', quiet=True)


def test_no_validation_split_gives_a_table_without_best_val(tmp_path):
    "With val_per_class=0 (iNaturalist has no validation split) the table has no best-on-validation line."
    from dataclasses import replace
    from h2t_nb.presets import PAPER, PRESETS
    from h2t_nb.table import train_table, write_table

    base = replace(PRESETS['digits100_lt_if100_stage1'], val_per_class=0, fast_dev_run=1)
    rows = {r: PRESETS[f'digits100_lt_if100_{r}'].stage2 for r in ('dr', 'no_fusion', 'dr_h2t')}
    results = train_table(base, rows, [0, 1], tmp_path, quiet=True)
    text = write_table(results, PAPER['cifar100_lt_if100'], tmp_path, 'no validation split')
    saved = json.loads((tmp_path / 'table.json').read_text())
    assert (
        saved['summary']['best_val'] == [] and saved['paired']['best_val'] == [] and len(saved['paired']['last']) == 2
    )
    assert 'DR + H2T ρ=0.25' in text


def one_line_failure(out, message):
    "A refusal as a user sees it: non-zero exit, the message, one line, no traceback."
    assert out.returncode != 0 and message in out.stderr, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]


@pytest.mark.rehearsal
def test_paper_protocol_adds_its_line_and_keeps_the_numbers(tmp_path):
    """--paper-protocol adds a test pass every epoch: the same last and best-on-validation numbers, plus the paper-
    protocol line; refused on resume."""
    common = ('digits100_lt_if100', '--rows', 'dr_h2t', '--epochs1', '1', '--epochs2', '2')
    tracked, once = (
        cli(*common, '--paper-protocol', '--out', 'tracked', cwd=tmp_path),
        cli(*common, '--out', 'once', cwd=tmp_path),
    )
    assert tracked.returncode == 0 and once.returncode == 0, (tracked.stderr[-2000:], once.stderr[-2000:])
    protocol = 'paper protocol (selected on test: optimistic)'
    assert protocol in tracked.stdout and protocol not in once.stdout
    saved = {
        name: json.loads((tmp_path / name / 'digits100_lt_if100-table' / 'table.json').read_text())
        for name in ('tracked', 'once')
    }
    for selection in ('last', 'best_val'):
        assert saved['once']['summary'][selection] == saved['tracked']['summary'][selection], selection
    assert saved['tracked']['summary']['best_test'] and not saved['once']['summary'].get('best_test')
    history = saved['once']['per_seed']['0']['dr_h2t']['history']
    assert len(history) == 2 and all('test_top1' not in h and 'val_balanced' in h for h in history)
    tracked_history = saved['tracked']['per_seed']['0']['dr_h2t']['history']
    assert saved['tracked']['summary']['best_test'][-1]['top1'] == max(h['test_top1'] for h in tracked_history)
    one_line_failure(
        cli('--resume', str(tmp_path / 'once' / 'digits100_lt_if100-table'), '--paper-protocol', cwd=tmp_path),
        '--paper-protocol would change what it trains',
    )


def _table_after_a_barrier(barrier, out):
    "h2t-table's function in a fresh process whose first mkdir of the table folder waits for the other process."
    import pathlib

    mkdir, waited = pathlib.Path.mkdir, []

    def mkdir_after_barrier(self, *args, **kwargs):
        if self.name.startswith('digits100_lt_if100-table') and not waited:
            waited.append(True)
            barrier.wait(timeout=300)
        return mkdir(self, *args, **kwargs)

    pathlib.Path.mkdir = mkdir_after_barrier
    from h2t_nb.cli import h2t_table

    h2t_table('digits100_lt_if100', rows=['dr'], fast_dev_run=1, out=out)


def test_two_tables_started_together_land_in_two_folders(tmp_path):
    "Both processes have looked for a free name before either creates it: each still gets its own folder."
    import multiprocessing

    spawn = multiprocessing.get_context('spawn')
    barrier = spawn.Barrier(2)
    runs = [spawn.Process(target=_table_after_a_barrier, args=(barrier, str(tmp_path / 'res'))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=600)
    assert [run.exitcode for run in runs] == [0, 0]
    folders = sorted(p.name for p in (tmp_path / 'res').iterdir())
    assert folders == ['digits100_lt_if100-table', 'digits100_lt_if100-table-1']
    for name in folders:
        assert (tmp_path / 'res' / name / 'table.json').is_file()
