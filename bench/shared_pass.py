"""The shared backbone pass (06e_shared_pass): a table with every stage-2 row in its own pass against the same table with
the rows that feed their backbone the same batches sharing one pass, same seeds, same machine, back to back.

    python bench/shared_pass.py                       # the Digits-100-LT table, seeds 0-4, all rows (CPU: about 50 minutes)
    python bench/shared_pass.py --seeds 0 1           # fewer seeds: the same ratio per seed, sooner
    python bench/shared_pass.py --keep runs/bench     # keep both tables (the shared one is a normal, resumable table)

Prints the wall time of each table and `speedup N` (alone over shared), checks that both tables hold the same numbers,
then times the whole ρ ablation (ρ = 0, 0.1, ..., 1.0: 11 rows, one pass) against one row pair run alone today
(DR + H2T ρ=0.25 and its no-fusion control), both from the first table's stage 1 of the first seed.
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


def timed_table(seeds, out, shared):
    "Run h2t-table on the family in `out`; its wall time in seconds."
    env = {**os.environ, 'H2T_SHARED_PASS': '1' if shared else '0', 'PYTHONWARNINGS': 'ignore'}
    exe = Path(sys.executable).parent / 'h2t-table'
    start = time.perf_counter()
    subprocess.run([str(exe), FAMILY, '--seeds', *map(str, seeds), '--out', str(out)], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def rho_ablation_ratio(table_dir, seed):
    "Seconds for the 11-row ρ ablation in one shared pass, and for DR + H2T with its no-fusion control each alone, from one stage 1."
    from h2t_nb.checkpoints import load_checkpoint
    from h2t_nb.datasets import build_data
    from h2t_nb.presets import family_rows
    from h2t_nb.shared_pass import train_stage2_rows
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
    parser.add_argument('--keep', default=None, help='keep both tables in this folder (default: a temporary one, removed)')
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {FAMILY}, seeds {args.seeds}, all rows")
    alone = timed_table(args.seeds, root / 'alone', shared=False)
    shared = timed_table(args.seeds, root / 'shared', shared=True)
    a, s = (json.loads((root / d / f'{FAMILY}-table' / 'table.json').read_text()) for d in ('alone', 'shared'))
    same = a['summary'] == s['summary'] and a['paired'] == s['paired']
    print(f"every row alone: {alone / 60:.1f} min; rows sharing a pass: {shared / 60:.1f} min; speedup {alone / shared:.2f}x; "
          f"same numbers: {same}")
    pair, ablation = rho_ablation_ratio(root / 'shared' / f'{FAMILY}-table', args.seeds[0])
    print(f"stage 2 of seed {args.seeds[0]}: DR + H2T and its no-fusion control alone {pair:.0f} s; the 11-point ρ ablation in one pass "
          f"{ablation:.0f} s; ratio {ablation / pair:.2f}")
    if not args.keep: shutil.rmtree(root)
    if not same: sys.exit('the two tables differ: the shared pass is not exact')


if __name__ == '__main__':
    main()
