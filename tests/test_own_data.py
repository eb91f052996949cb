"Your own images (ImageFolder) through both commands: the table and its verdict, and bad data refused in one line."

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_command as run
from h2t_nb.own_data import image_folder_data, write_digit_folder

COUNTS = dict(zero=150, one=70, two=30, three=12, four=6)


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    "Real digit images in five long-tailed class folders: mixed sizes, modes, PNG and JPEG, one broken, one text file."
    root = write_digit_folder(tmp_path_factory.mktemp('own') / 'digits', COUNTS)
    (root / 'train' / 'one' / 'broken.png').write_bytes(b'not an image')
    (root / 'train' / 'zero' / 'notes.txt').write_text('where the photos came from')
    return root


def test_train_one_row_on_a_folder_of_images(tree, tmp_path):
    out = run(
        'h2t-train',
        '--preset',
        'imagefolder_dr_h2t',
        '--data-dir',
        str(tree),
        '--fast-dev-run',
        '1',
        '--out',
        'runs',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'data: 5 classes, 268 training images read at 32×32' in out.stdout
    assert 'data: 1 unreadable images skipped: train/one/broken.png' in out.stdout
    assert 'data: 1 files that are not images ignored' in out.stdout
    assert (
        'data: many / medium / few by training count (more than 100, 20 to 100, fewer than 20 images): 1 / 1 / 3'
        in out.stdout
    )
    run_dir = tmp_path / 'runs' / 'imagefolder_dr_h2t'
    assert (run_dir / 'skipped_files.txt').read_text().startswith(str(tree / 'train' / 'one' / 'broken.png') + '\t')
    summary = json.loads((run_dir / 'results.json').read_text())['summary']
    assert {r['stage'] for r in summary} == {'stage1', 'stage2'}, summary


def test_table_on_a_folder_of_images_ends_with_a_verdict(tree, tmp_path):
    out = run(
        'h2t-table',
        'imagefolder',
        '--data-dir',
        str(tree),
        '--seeds',
        '0',
        '1',
        '--fast-dev-run',
        '1',
        '--rows',
        'dr',
        'no_fusion',
        'dr_h2t',
        '--out',
        'runs',
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    verdict = out.stdout.split('verdict (a fast dev run: the numbers mean nothing):\n')[1].splitlines()[:4]
    assert [line.split(',')[0].strip() for line in verdict] == ['dr_h2t vs DR'] * 2 + [
        'dr_h2t vs the no-fusion control'
    ] * 2
    assert all('2 seeds: ' in line and '95% interval [' in line for line in verdict), verdict
    assert (tmp_path / 'runs' / 'imagefolder-table' / 'table.json').is_file()


def bad_trees(root: Path):
    "Each bad folder, and the line that refuses it."
    write_digit_folder(root / 'one_class', dict(zero=10))
    write_digit_folder(root / 'no_image', dict(zero=10, one=10))
    shutil.rmtree(root / 'no_image' / 'train' / 'one')
    (root / 'no_image' / 'train' / 'one').mkdir()
    (root / 'no_image' / 'train' / 'one' / 'x.jpg').write_bytes(b'broken')
    write_digit_folder(root / 'mismatch', dict(zero=10, one=10))
    write_digit_folder(root / 'mismatch', dict(zero=3, two=3), split='test')
    (root / 'empty' / 'train').mkdir(parents=True)
    return {
        'missing': 'is not a folder',
        'empty': 'holds no class folders',
        'one_class': 'holds one class (zero)',
        'no_image': "classes ['one'] have no readable training image",
        'mismatch': "train/ and test/ hold different classes (only in train/: ['one'], only in test/: ['two'])",
    }


@pytest.mark.parametrize('case', ['missing', 'empty', 'one_class', 'no_image', 'mismatch'])
def test_bad_data_is_refused_in_one_line_before_any_folder(case, tmp_path):
    message = bad_trees(tmp_path)[case]
    out = run(
        'h2t-train', '--preset', 'imagefolder_dr_h2t', '--data-dir', str(tmp_path / case), '--out', 'runs', cwd=tmp_path
    )
    assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'runs').exists()


def test_given_test_folder_is_used_and_validation_drawn_from_train(tmp_path):
    root = write_digit_folder(tmp_path / 'd', dict(zero=40, one=20))
    write_digit_folder(root, dict(zero=7, one=5), split='test', start=100)
    data = image_folder_data(root, size=16, per_class=4)
    assert data.test.counts == [7, 5] and data.val.counts == [4, 4] and data.train.counts == [36, 16]
    assert data.train.images.shape[1:] == (3, 16, 16)
    assert "val drawn from train/: 4 images per class (seed 0), at least one left for training" in data.notes
