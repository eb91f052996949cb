"""Your own images (an ImageFolder tree, list files, a Hugging Face dataset) through both commands: the table and its
verdict, the in-memory and streamed paths, and bad data refused in one line."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import command_env, run_command as run
import torch

from h2t_nb.own_data import image_folder_data, write_digit_folder
from h2t_nb.pipeline import IMAGENET_MEAN, IMAGENET_STD, Augment, DevicePipeline, LoaderPipeline

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
    assert 'data: 5 classes, 268 training images at 32×32, in memory, decoded once: all 269 images' in out.stdout
    assert 'data: 1 unreadable images skipped: train/one/broken.png' in out.stdout
    assert 'data: 1 entries that are not labelled images ignored' in out.stdout
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
        'mismatch': "the training and test splits hold different classes (only in training: ['one'], only in test: "
        "['two'])",
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
    assert "val drawn from the training images: 4 per class (seed 0), at least one left for training" in data.notes


def hub_rows(tree: Path):
    "The tree's training images as a Hugging Face dataset (ClassLabel names), with one row whose bytes are no image."
    import datasets

    from h2t_nb.own_data import scan_split

    scan = scan_split(tree, 'train')
    names = list(scan.files)
    rows = [(dict(bytes=p.read_bytes(), path=None), names.index(c)) for c, ps in scan.files.items() for p in ps]
    features = datasets.Features(photo=datasets.Image(), species=datasets.ClassLabel(names=names))
    return datasets.Dataset.from_dict(
        dict(photo=[r[0] for r in rows], species=[r[1] for r in rows]), features=features
    )  # broken.png comes in as bytes that do not decode


@pytest.fixture(scope='module')
def hub_folder(tree, tmp_path_factory):
    "A DatasetDict with a train split and an unlabelled test split, written by save_to_disk."
    import datasets

    rows = hub_rows(tree)
    unlabelled = rows.select(range(20)).map(lambda r: dict(species=-1))
    folder = tmp_path_factory.mktemp('hub') / 'saved'
    datasets.DatasetDict(train=rows, test=unlabelled).save_to_disk(str(folder))
    return folder


OFFLINE_HUB = {'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}


def offline():
    return command_env(**OFFLINE_HUB)


def test_hugging_face_dataset_saved_to_disk_through_both_commands(hub_folder, tmp_path):
    one = run(
        'h2t-train', '--preset', 'hf_dr_h2t', '--data-dir', str(hub_folder), '--fast-dev-run', '1', '--out', 'runs',
        cwd=tmp_path, env=offline(),
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    assert 'data: split test has no labels: treated as missing' in one.stdout
    assert 'data: 1 unreadable images skipped: train[' in one.stdout  # the row whose bytes are no image
    assert 'data: 5 classes, 268 training images at 32×32, in memory' in one.stdout
    assert (tmp_path / 'runs' / 'hf_dr_h2t' / 'skipped_files.txt').read_text().startswith('train[')
    table = run(
        'h2t-table', 'hf', '--data-dir', str(hub_folder), '--seeds', '0', '1', '--fast-dev-run', '1',
        '--rows', 'dr', 'no_fusion', 'dr_h2t', '--out', 'runs', cwd=tmp_path, env=offline(),
    )  # fmt: skip
    assert table.returncode == 0, table.stderr[-3000:]
    assert 'hf: hf, resnet32, seeds [0, 1]' in table.stdout
    verdict = table.stdout.split('verdict (a fast dev run: the numbers mean nothing):\n')[1].splitlines()[:4]
    assert all('2 seeds: ' in line and '95% interval [' in line for line in verdict), verdict


def test_hugging_face_objects_in_the_python_api(tree):
    import datasets

    from h2t_nb.own_data import hub_data

    rows = hub_rows(tree)
    alone = hub_data(rows, size=16, per_class=4)  # a Dataset: its rows are the training images
    assert alone.train.classes == ['zero', 'one', 'two', 'three', 'four'] and len(alone.skipped) == 1
    split = hub_data(datasets.DatasetDict(train=rows, validation=rows), size=16, per_class=4, in_memory=False)
    assert split.val.counts == [150, 70, 30, 12, 6]  # its own validation split, read as given
    assert split.train[0][0].shape == (3, 16, 16) and len(split.skipped) == 2  # streamed: checked in both splits


def test_list_files_with_any_names(tree, tmp_path):
    from h2t_nb.own_data import scan_split

    scan = scan_split(tree, 'train')
    lines = [f'{p.relative_to(tree).as_posix()} {c}' for c, ps in scan.files.items() for p in ps]
    lists = tmp_path / 'lists'
    lists.mkdir()
    (lists / 'fold-A.train').write_text('\n'.join(lines[1::2]) + '\n')
    (lists / 'fold-A.holdout').write_text('\n'.join(lines[::2]) + '\n')
    out = run(
        'h2t-train', '--preset', 'imagefolder_dr', '--data-dir', str(tree), '--train-list', str(lists / 'fold-A.train'),
        '--test-list', str(lists / 'fold-A.holdout'), '--fast-dev-run', '1', '--out', 'runs', cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'data: 5 classes, 134 training images at 32×32' in out.stdout  # every other file; broken.png is in the test
    assert 'data: val drawn from the training images: 10 per class' in out.stdout
    assert 'data: 1 unreadable images skipped: train/one/broken.png' in out.stdout


def test_in_memory_and_streamed_paths_give_the_same_batches(tree):
    "The same seed draws the same sampler order; both pipelines then give the same images and labels, batch by batch."
    memory = image_folder_data(tree, size=32, in_memory=True)
    streamed = image_folder_data(tree, size=32, in_memory=False)
    assert not hasattr(streamed.train.images, 'shape') and len(streamed.train) == len(memory.train)
    plain = Augment(padding=0, flip=False, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for split in ('train', 'val', 'test'):
        device = DevicePipeline(getattr(memory, split), plain)
        loader = LoaderPipeline(getattr(streamed, split), plain.transform((32, 32)), plain.transform((32, 32), False))
        order = torch.randperm(len(getattr(memory, split)), generator=torch.Generator().manual_seed(3))
        for train in (True, False):
            pairs = list(zip(device.batches(order, 16, train), loader.batches(order, 16, train)))
            assert len(pairs) == (len(order) // 16 if train else -(-len(order) // 16)) > 0
            for (x_mem, y_mem), (x_stream, y_stream) in pairs:
                torch.testing.assert_close(x_stream, x_mem, rtol=0, atol=1e-5)
                assert torch.equal(y_stream, y_mem)


def test_a_large_dataset_streams_and_the_run_says_why(tree, tmp_path):
    out = run(
        'h2t-train', '--preset', 'imagefolder_dr_h2t', '--data-dir', str(tree), '--pipeline', 'loader',
        '--num-workers', '1', '--fast-dev-run', '1', '--out', 'runs', cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'data: 5 classes, 268 training images at 32×32, streamed through the DataLoader, as asked' in out.stdout
    from h2t_nb.own_data import choose_memory

    chosen, why = choose_memory(30_000, 224)
    assert not chosen and 'over the 4 GiB budget' in why and 'decoded per batch by its workers' in why


@pytest.mark.parametrize(
    'args, message',
    [
        (
            ['--preset', 'hf_dr', '--label-column', 'fine'],
            "no label column 'fine': its columns are ['photo', 'species']",
        ),
        (['--preset', 'hf_dr', '--image-column', 'species'], "column 'species' holds ClassLabel, not images"),
        (['--preset', 'hf_dr', '--data-dir', 'nobody/no-such-dataset'], 'is neither a folder written by save_to_disk'),
        (['--preset', 'imagefolder_dr', '--train-list', 'missing.txt'], 'missing.txt not found'),
        (['--preset', 'hf_dr', '--train-list', 'x.txt'], "train_list is for dataset='imagefolder', not 'hf'"),
        (['--preset', 'imagefolder_dr', '--val-list', 'x.txt'], 'val_list and test_list go with train_list'),
        (
            ['--preset', 'imagefolder_dr', '--model', 'timm:convnext_atto', '--image-size', '8'],
            'the images are too small for it; pass --image-size 32',
        ),
    ],
)
def test_bad_input_of_your_own_is_refused_in_one_line(args, message, tree, hub_folder, tmp_path):
    data = str(hub_folder if 'hf_dr' in args else tree)
    out = run('h2t-train', '--data-dir', data, *args, '--out', 'runs', cwd=tmp_path, env=offline())
    assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'runs').exists()


@pytest.mark.rehearsal  # two more tables: the quick tier stays within ten minutes
def test_a_host_on_your_own_data_gets_its_own_verdict(tree, tmp_path):
    "GCL on a folder: H2T judged against GCL's own stage 2 and its no-fusion control; too few rows, no verdict."
    out = run(
        'h2t-table', 'imagefolder_gcl', '--data-dir', str(tree), '--seeds', '0', '1', '--fast-dev-run', '1',
        '--out', 'runs', cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    verdict = out.stdout.split('verdict (a fast dev run: the numbers mean nothing):\n')[1].splitlines()[:4]
    starts = ['h2t vs GCL, overall', 'h2t vs GCL, few-shot', 'h2t vs GCL, two streams, no fusion, overall']
    assert all(line.strip().startswith(start) for line, start in zip(verdict, starts)), verdict
    partial = run(
        'h2t-table', 'imagefolder', '--data-dir', str(tree), '--rows', 'dr', 'dr_h2t', '--fast-dev-run', '1',
        '--out', 'runs', cwd=tmp_path,
    )  # fmt: skip
    assert partial.returncode == 0, partial.stderr[-3000:]
    assert (
        'no verdict: it compares dr_h2t with dr, no_fusion; train them (--rows dr_h2t dr no_fusion).' in partial.stdout
    )


def test_without_datasets_the_run_says_how_to_install_it(hub_folder, tmp_path):
    "An environment without the hf extra: one line that names it, before any folder."
    import subprocess
    import sys

    hide = (
        "import sys; sys.modules['datasets'] = None; "
        "from h2t_nb.cli import train_main; "
        f"sys.argv = ['h2t-train', '--preset', 'hf_dr', '--data-dir', {str(hub_folder)!r}, '--out', 'runs']; "
        "train_main()"
    )
    out = subprocess.run([sys.executable, '-c', hide], cwd=tmp_path, capture_output=True, text=True, env=offline())
    assert out.returncode == 1 and 'pip install "h2t_nb[hf]"' in out.stderr, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'runs').exists()
