"""The shared backbone pass (06e_shared_pass): the Digits-100-LT table as h2t_nb ran it before the shared pass existed
(the code of `--before`, default 51b10c7, which tested every stage-2 epoch), the same table with this code and
--paper-protocol (the same per-epoch test pass) with every stage-2 row in its own pass and with the rows that feed their
backbone the same batches sharing passes, and finally this code's default table (shared passes, each row tested after
its last epoch only); same seeds, same machine, the tables interleaved seed by seed.

    python bench/shared_pass.py                       # seeds 0-4, all rows (two CPU cores: about an hour)
    python bench/shared_pass.py --seeds 0 1           # fewer seeds: the same ratios per seed, sooner
    python bench/shared_pass.py --before none         # only this code, rows alone against rows sharing
    python bench/shared_pass.py --no-alone            # skip the table with every row alone (the longest of this code's)
    python bench/shared_pass.py --keep runs/bench     # keep the tables (each is a normal, resumable table)

Each kind of table runs one seed at a time, the kinds interleaved seed by seed, and a line after each seed gives the
times so far. Prints the wall time of each kind of table and the speedups: like for like (--paper-protocol) and as `h2t-table` runs by
default, each over before; checks that the tables hold the same numbers (the default one: its last and
best-on-validation numbers, all it reports), then (unless --no-rho) times the whole ρ ablation (ρ = 0, 0.1, ..., 1.0: 11 rows, one pass)
against one row pair run alone (DR + H2T ρ=0.25 and its no-fusion control), both from the default table's stage 1 of the
first seed. The earlier code runs from a git worktree of this repository (imported first through PYTHONPATH), in this
environment.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

FAMILY = 'digits100_lt_if100'
REPO = Path(__file__).resolve().parents[1]


def timed_table(seeds, out, shared, code=None, extra=()):
    "Run h2t-table on the family in `out` (with the h2t_nb found in folder `code`, if given, and `extra` flags); its wall time in seconds."
    # --rows-alone for this code; commits from before it was a flag read H2T_SHARED_PASS=0 instead
    env = {**os.environ, 'H2T_SHARED_PASS': '1' if shared else '0', 'PYTHONWARNINGS': 'ignore'}
    if not shared and code is None: extra = (*extra, '--rows-alone')
    if code: env['PYTHONPATH'] = str(code)   # the worktree's package comes before the installed one
    # run outside the repository: `python -c` puts its working directory first on sys.path, and this repository's h2t_nb
    # would then shadow the worktree's (a run from the repository's root timed this code as "before" until 2026-12-02)
    where = Path(out).resolve().parent
    where.mkdir(parents=True, exist_ok=True)
    imported = subprocess.run([sys.executable, '-c', 'import h2t_nb; print(h2t_nb.__file__)'], env=env, cwd=where, capture_output=True, text=True, check=True).stdout.strip()
    expected = Path(code or REPO).resolve()
    if expected not in Path(imported).resolve().parents: sys.exit(f"the table would run {imported}, not the code in {expected}")
    cmd = [sys.executable, '-c', 'import sys; from h2t_nb.cli import table_main; sys.argv[0] = "h2t-table"; table_main()']
    start = time.perf_counter()
    subprocess.run([*cmd, FAMILY, '--seeds', *map(str, seeds), '--out', str(Path(out).resolve()), *extra], check=True, env=env, cwd=where, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def worktree(rev, where):
    "A detached git worktree of this repository at `rev`, in `where`."
    subprocess.run(['git', '-C', str(REPO), 'worktree', 'add', '--detach', str(where), rev], check=True, capture_output=True)
    return where


def rho_ablation_ratio(table_dir, seed):
    "Seconds for the 11-row ρ ablation in one shared pass, and for DR + H2T with its no-fusion control each alone, from one stage 1."
    from h2t_nb.checkpoints import load_checkpoint
    from h2t_nb.datasets import build_data
    from h2t_nb.presets import family_rows
    from h2t_nb.train import train_stage2_rows
    from h2t_nb.train import setup_runtime, train_stage2
    base, rows = family_rows(FAMILY)
    cfg = replace(base, seed=seed)
    data, rt = build_data(cfg), setup_runtime(cfg)
    init = load_checkpoint(table_dir / f'seed{seed}' / 'stage1' / 'final.pt', stage=1)
    dr = rows['dr_h2t']
    rho_rows = [replace(cfg, stage2=replace(dr, fusion='two_streams', ratio=0.) if r == 0 else replace(dr, ratio=r / 10)) for r in range(11)]
    work = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    for name in ('no_fusion', 'dr_h2t'): train_stage2(replace(cfg, stage2=rows[name]), data, rt, work / 'pair' / name, init)
    pair = time.perf_counter() - start
    start = time.perf_counter()
    train_stage2_rows(rho_rows, data, rt, [work / 'rho' / f'rho{r}' for r in range(11)], init)
    ablation = time.perf_counter() - start
    shutil.rmtree(work)
    return pair, ablation


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--before', default='51b10c7', help="the revision to time as 'before' (default: the last one without the shared pass); 'none' skips it")
    parser.add_argument('--no-rho', action='store_true', help='skip timing the ρ ablation')
    parser.add_argument('--no-alone', action='store_true', help="skip the table with every row in its own pass")
    parser.add_argument('--keep', default=None, help='keep the tables in this folder (default: a temporary one, removed)')
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {FAMILY}, seeds {args.seeds}, all rows", flush=True)
    # like for like with `before` (which tested every stage-2 epoch): --paper-protocol; then this code's default
    runs = {}
    if args.before != 'none': runs['before'] = dict(shared=False, code=worktree(args.before, root / 'before_code'))
    if not args.no_alone: runs['alone'] = dict(shared=False, extra=['--paper-protocol'])
    runs['shared_pp'] = dict(shared=True, extra=['--paper-protocol'])
    runs['default'] = dict(shared=True)
    label = {'before': f'before ({args.before}, a test pass every stage-2 epoch)', 'alone': 'this code, every row alone, --paper-protocol',
             'shared_pp': 'this code, rows sharing passes, --paper-protocol (like for like)',
             'default': 'this code as it runs by default (rows sharing passes, tested after the last epoch)'}
    # one table per seed and kind of run, the kinds interleaved seed by seed (their order reversed every other seed), so that
    # this machine's slow drifts in speed fall on every kind alike, and the seeds done so far already give a fair ratio
    times, same = {run: 0. for run in runs}, True
    headline = lambda t: {f'{part}/{k}': t[part].get(k) for part in ('summary', 'paired') for k in ('last', 'best_val')}
    text = lambda x: json.dumps(x, sort_keys=True)   # compared as JSON text: a one-seed table's intervals are NaN, and NaN == NaN is False
    tracked = [run for run in runs if run != 'default']   # the tables that test every stage-2 epoch: every number comparable
    for i, seed in enumerate(args.seeds):
        for run in (list(runs) if i % 2 == 0 else list(runs)[::-1]):
            times[run] += timed_table([seed], root / run / f'seed{seed}', **runs[run])
        tables = {run: json.loads((root / run / f'seed{seed}' / f'{FAMILY}-table' / 'table.json').read_text()) for run in runs}
        whole = lambda t: text([t['summary'], t['paired']])
        same = same and all(whole(tables[run]) == whole(tables['shared_pp']) for run in tracked)
        same = same and text(headline(tables['default'])) == text(headline(tables['shared_pp'])) and not tables['default']['summary'].get('best_test')
        print(f"seeds {args.seeds[:i + 1]} done: " + ', '.join(f"{run} {times[run] / 60:.1f} min" for run in runs)
              + f"; same numbers so far: {same}", flush=True)
    for run in runs:
        print(f"{label[run]}: {times[run] / 60:.1f} min" + ('' if run in ('before', 'alone') else '; speedup ' + ', '.join(
            f"over {name} {times[name] / times[run]:.2f}x" for name in ('alone', 'before', 'shared_pp') if name in times and name != run)), flush=True)
    print(f"same numbers in every table (the default ones: last and best-on-validation, no paper-protocol line): {same}", flush=True)
    if not args.no_rho:
        pair, ablation = rho_ablation_ratio(root / 'default' / f'seed{args.seeds[0]}' / f'{FAMILY}-table', args.seeds[0])
        print(f"stage 2 of seed {args.seeds[0]}: DR + H2T and its no-fusion control alone {pair:.0f} s; the 11-point ρ ablation in one pass "
              f"{ablation:.0f} s; ratio {ablation / pair:.2f}")
    if 'before' in runs: subprocess.run(['git', '-C', str(REPO), 'worktree', 'remove', '--force', str(root / 'before_code')], check=False)
    if not args.keep: shutil.rmtree(root)
    if not same: sys.exit('the tables differ: the shared pass is not exact, or the code changed the numbers since --before')

if __name__ == '__main__':
    main()
