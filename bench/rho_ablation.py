"""The fusing-ratio ablation on Digits-100-LT (the paper's §8.5 on CIFAR-100-LT IF=100): ρ = 0, 0.1, ..., 1.0, one shared
backbone pass per seed (06e_shared_pass), every ρ paired against ρ = 0 (both streams, nothing fused) on the same stage 1.

    python bench/rho_ablation.py --table runs/digits100_lt_if100-table    # reuse that table's stage 1 of each seed
    python bench/rho_ablation.py                                          # or train stage 1 too (about 75 s a seed on 2 CPU cores)

Writes OUT/table.json (h2t-table's format, rows rho00 ... rho10) with its CSVs and plot; 08_table plots it beside the
paper's curve from the copy shipped in the package (`load_measured('digits100_lt_if100_rho')`).
"""
import argparse
import shutil
from dataclasses import replace
from pathlib import Path

from h2t_nb.presets import family_rows
from h2t_nb.table import train_table, write_table

FAMILY = 'digits100_lt_if100'


def rho_rows(dr_h2t)->dict:
    "ρ = 0 (both streams, nothing fused: the fusion's own control), then DR + H2T at ρ = 0.1 ... 1.0."
    return {f'rho{r:02d}': replace(dr_h2t, fusion='two_streams', ratio=0.) if r == 0 else replace(dr_h2t, fusion='channels', ratio=r / 10)
            for r in range(11)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--table', default=None, help="an h2t-table folder of the family: its stage 1 of each seed is reused (copied)")
    parser.add_argument('--out', default=f'runs/{FAMILY}-rho', help='folder of the ablation (continued when it exists)')
    args = parser.parse_args()
    base, rows = family_rows(FAMILY)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    if args.table:
        for seed in args.seeds:
            source, target = Path(args.table) / f'seed{seed}' / 'stage1', out / f'seed{seed}' / 'stage1'
            if not (source / 'report.json').is_file(): raise SystemExit(f"{source} holds no finished stage 1: train the table's seed {seed} first, or drop --table.")
            if not target.exists(): shutil.copytree(source, target)
    ablation = rho_rows(rows['dr_h2t'])
    results = train_table(base, ablation, args.seeds, out, quiet=False)
    title = f"{FAMILY} ρ ablation: digits100 IF=100, {base.model}, seeds {args.seeds}, test accuracy in %, paired against ρ = 0 (two streams, nothing fused)"
    print(write_table(results, {}, out, title, control_of={}, baseline='rho00', names={r: f'ρ={int(r[3:]) / 10:.1f}' for r in ablation}))


if __name__ == '__main__':
    main()
