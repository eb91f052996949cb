"""What a command loads before it has read its flags: --help and a refused flag import neither the trainer nor the
heavy libraries it needs (torchvision, timm, scipy, matplotlib, scikit-learn). bench/cli_startup.py times it."""

import json
import subprocess
import sys

import pytest

HEAVY = ('torchvision', 'timm', 'scipy', 'matplotlib', 'sklearn', 'h2t_nb.runs', 'h2t_nb.train', 'h2t_nb.table')
PROBE = '''
import json, sys
from h2t_nb import cli
main, argv, record = getattr(cli, sys.argv[1]), sys.argv[3:], sys.argv[2]
sys.argv = [main.__name__] + argv
try: main()
except SystemExit as e:   # a refusal's message, as the interpreter would print it
    if isinstance(e.code, str): print(e.code, file=sys.stderr)
with open(record, 'w') as f: json.dump(sorted(m for m in json.loads(sys.stdin.read()) if m in sys.modules), f)
'''


@pytest.mark.parametrize(
    'main, argv',
    [
        ('train_main', ['--help']),
        ('train_main', ['--ratio', '2']),
        ('train_main', ['--preset', 'nope']),
        ('table_main', ['--help']),
        ('table_main', ['nope']),
        ('table_main', ['digits100_lt_if100', '--lr2', '-1']),
    ],
)
def test_help_and_refused_flags_load_nothing_heavy(tmp_path, main, argv):
    record = tmp_path / 'loaded.json'
    out = subprocess.run(
        [sys.executable, '-c', PROBE, main, str(record), *argv],
        input=json.dumps(HEAVY),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    said = ('usage:' in out.stdout) if argv == ['--help'] else len(out.stderr.strip().splitlines()) == 1
    assert said, out.stderr[-2000:]
    assert json.loads(record.read_text()) == [] and not (tmp_path / 'runs').exists()
