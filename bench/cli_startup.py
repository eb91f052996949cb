"""What a command costs before it trains: the CPU time of `h2t-train --help`, of a refused flag and of `h2t-table --help`,
each as a ratio to `python -c "import torch"` measured in the same run (the floor: the commands validate with torch's
configuration classes), interleaved and repeated so that the machine's drifts fall on all alike.

    python bench/cli_startup.py            # 5 rounds
    python bench/cli_startup.py --rounds 9

`--before REV` also times the code of a git revision (from a worktree, imported first through PYTHONPATH), e.g. 749ef72,
the code before the commands parsed their flags before importing the trainer.
"""
import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {'import torch': ['-c', 'import torch'],
            'h2t-train --help': ['-c', 'from h2t_nb.cli import train_main; train_main()', '--help'],
            'h2t-train --ratio 2': ['-c', 'from h2t_nb.cli import train_main; train_main()', '--ratio', '2'],
            'h2t-table --help': ['-c', 'from h2t_nb.cli import table_main; table_main()', '--help']}


def cpu_seconds(args, env)->float:
    "User + system CPU time of one Python process run with `args` (its output discarded)."
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, *args], env=env, cwd=tempfile.gettempdir(), capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--before', default=None, help='a git revision to time as well')
    args = parser.parse_args()
    codes = {'this code': None}
    worktree = None
    if args.before:
        worktree = Path(tempfile.mkdtemp()) / 'before'
        subprocess.run(['git', '-C', str(REPO), 'worktree', 'add', '--detach', str(worktree), args.before], check=True,
                       capture_output=True)
        codes[args.before] = worktree
    try:
        times = {(code, name): [] for code in codes for name in COMMANDS}
        for _ in range(args.rounds):
            for code, folder in codes.items():
                env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
                if folder: env['PYTHONPATH'] = str(folder)
                for name, command in COMMANDS.items(): times[code, name].append(cpu_seconds(command, env))
        print(f"CPU seconds, median of {args.rounds} rounds ({platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}):")
        for code in codes:
            floor = statistics.median(times[code, 'import torch'])
            for name in COMMANDS:
                t = statistics.median(times[code, name])
                print(f"  {code:>10}  {name:<22} {t:5.2f} s  {t / floor:4.2f}x import torch")
    finally:
        if worktree:
            subprocess.run(['git', '-C', str(REPO), 'worktree', 'remove', '--force', str(worktree)], capture_output=True)
            shutil.rmtree(worktree.parent, ignore_errors=True)


if __name__ == '__main__':
    main()
