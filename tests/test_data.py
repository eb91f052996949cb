"Datasets loaded through the real code paths on data the tests write in the real formats, and bad input."

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.transforms import v2

from h2t_nb.data import CIFAR10LT, CIFAR100LT, ListFileLT, digits_lt, lt_counts, lt_list_dataset, read_list_file
from sklearn.datasets import load_digits
from conftest import write_cifar, write_list_dataset


def test_cifar100lt_through_torchvision(tmp_path, cifar_md5_off):
    # 500 images per class is too much to write; n_max is the class attribute, so a subclass scales it down honestly
    class SmallCIFAR100LT(CIFAR100LT):
        n_max = 20

    root = write_cifar(tmp_path, 100, per_class_train=24, per_class_test=2)
    train = SmallCIFAR100LT(root, imb_factor=10, val_per_class=3)
    assert train.counts == lt_counts(20, 100, 10)
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.equal(train.images[:, 0, 0, 0].long(), train.targets)  # images follow their labels
    val = SmallCIFAR100LT(root, split='val', imb_factor=10, val_per_class=3)
    assert val.counts == [min(3, 24 - n) for n in lt_counts(20, 100, 10)]
    test = SmallCIFAR100LT(root, split='test', imb_factor=10)
    assert test.counts == [2] * 100 and train.classes[:2] == ['c0', 'c1']
    # LDAM-DRW's gen_imbalanced_data, written here from its published code: np.random.seed(0); per class of
    # np.unique(targets): idx = np.where(targets == c)[0]; np.random.shuffle(idx); keep idx[:n_c], with
    # n_c = int(img_max * imb_factor**(c / (C - 1))) and imb_factor = 1/IF. The validation pool is the next 3 images
    # of each shuffled class (h2t_nb's, never the test set).
    tv_targets = np.asarray(torchvision.datasets.CIFAR100(str(root)).targets)
    legacy = np.random.RandomState(0)  # the stream np.random.seed(0) starts
    expected, expected_val = [], []
    for c in np.unique(tv_targets):
        idx = np.where(tv_targets == c)[0]
        legacy.shuffle(idx)
        n_c = int(20 * 0.1 ** (c / (100 - 1.0)))
        expected += idx[:n_c].tolist()
        expected_val += idx[n_c : n_c + 3].tolist()
    assert train.indices.tolist() == expected and val.indices.tolist() == expected_val
    assert not set(train.indices.tolist()) & set(val.indices.tolist())


def test_cifar_train_and_val_disjoint(tmp_path, cifar_md5_off):
    class SmallCIFAR10LT(CIFAR10LT):
        n_max = 30

    root = write_cifar(tmp_path, 10, per_class_train=40, per_class_test=5)
    train = SmallCIFAR10LT(root, imb_factor=10, val_per_class=5)
    val = SmallCIFAR10LT(root, split='val', imb_factor=10, val_per_class=5)
    key = lambda ds: {bytes(im.numpy().tobytes()) for im in ds.images}
    assert not key(train) & key(val)
    assert train.counts == lt_counts(30, 10, 10) and val.counts == [5] * 10
    tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)])
    x, y = SmallCIFAR10LT(root, imb_factor=10, transform=tf)[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)


def test_cifar_missing_root_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='download=True'):
        CIFAR100LT(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='cifar-10-batches-py'):
        CIFAR10LT(tmp_path / 'nowhere', split='test')


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(imb_factor=0.01), 'not its inverse'),
        (dict(imb_factor=0.5), '< 1'),
        (dict(split='valid'), "'train', 'val' or 'test'"),
        (dict(split='val'), 'val_per_class'),
        (dict(profile='cosine'), "'exp'"),
    ],
)
def test_cifar_bad_arguments_refused_before_loading(tmp_path, kwargs, match):
    # the root does not exist: these errors must come first, before any file is looked for
    with pytest.raises(ValueError, match=match):
        CIFAR100LT(tmp_path / 'nowhere', **kwargs)


@pytest.mark.parametrize(
    'args, match',
    [
        ((500, 1, 10), 'at least 2 classes'),
        ((500, 10, 0.5), 'imbalance factor'),
        ((3, 10, 10), '0 images'),
        ((500, 0, 10), 'at least 2 classes'),
    ],
)
def test_lt_counts_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        lt_counts(*args)


def test_list_file_dataset(tmp_path):
    labels = [5] * 3 + [2] * 5 + [9] * 1 + [7] * 3  # counts: 2 -> 5, 5 -> 3, 7 -> 3 (tie, keeps id order), 9 -> 1
    write_list_dataset(tmp_path, labels)
    ds = ListFileLT(tmp_path, tmp_path / 'train.txt', transform=v2.Compose([v2.PILToTensor()]))
    assert ds.class_map == {2: 0, 5: 1, 7: 2, 9: 3}
    assert ds.counts == [5, 3, 3, 1] and len(ds) == 12
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and y == 1
    ds.save_class_map(tmp_path / 'class_map.json')
    assert '"2": 0' in (tmp_path / 'class_map.json').read_text()


def test_named_list_datasets_share_the_training_class_map(tmp_path):
    write_list_dataset(tmp_path, [3, 3, 3, 1], list_name='Places_LT_train.txt')
    write_list_dataset(tmp_path, [1, 3], list_name='Places_LT_val.txt')
    val = lt_list_dataset('places_lt', tmp_path, 'val')
    assert val.targets.tolist() == [1, 0]  # class 3 is the most frequent in *training*, so it is class 0 everywhere
    with pytest.raises(ValueError, match='no .test. list'):
        lt_list_dataset('inat2018', tmp_path, 'test')
    with pytest.raises(ValueError, match='unknown dataset'):
        lt_list_dataset('cifar', tmp_path)


def test_list_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='image root'):
        ListFileLT(tmp_path / 'nowhere', tmp_path / 'x.txt')
    with pytest.raises(FileNotFoundError, match='list file'):
        ListFileLT(tmp_path, tmp_path / 'missing.txt')
    (tmp_path / 'bad.txt').write_text('a.jpg 0\nb.jpg zero\n')
    with pytest.raises(ValueError, match=r'bad.txt:2'):
        read_list_file(tmp_path / 'bad.txt')
    write_list_dataset(tmp_path, [0, 0, 1], list_name='train.txt')
    (tmp_path / 'test.txt').write_text('train/0/0.jpg 4\n')
    with pytest.raises(ValueError, match='class map lacks'):
        ListFileLT(tmp_path, tmp_path / 'test.txt', class_map={0: 0, 1: 1})


digits_targets = load_digits().target


@pytest.mark.parametrize('imb_factor', [1, 5, 20, 50])
def test_digits_lt_splits(imb_factor):
    s = digits_lt(imb_factor=imb_factor, seed=1)
    assert s.train.counts == [int(100 * (1 / imb_factor) ** (c / 9.0)) for c in range(10)]  # LDAM-DRW's, truncated
    assert s.val.counts == [10] * 10 and s.test.counts == [50] * 10
    ids = [set(ds.indices.tolist()) for ds in (s.train, s.val, s.test)]
    assert sum(map(len, ids)) == len(set.union(*ids)) == len(s.train) + 600  # no image in two splits
    assert all(ds.targets.tolist() == [int(t) for t in digits_targets[ds.indices]] for ds in (s.train, s.val, s.test))


def test_lt_counts_are_the_literature_counts():
    "CIFAR-100-LT IF=100 has 10,847 training images (LDAM-DRW, MiSLAS, H2T), CIFAR-10-LT IF=100 12,406, IF=10 20,431."
    assert sum(lt_counts(500, 100, 100)) == 10847 and lt_counts(500, 100, 100)[-1] == 5
    assert sum(lt_counts(5000, 10, 100)) == 12406 and sum(lt_counts(5000, 10, 10)) == 20431
    assert lt_counts(100, 10, 20) == [100, 71, 51, 36, 26, 18, 13, 9, 6, 5]


def test_digits_lt_too_many_held_out():
    with pytest.raises(ValueError, match='smallest digit class'):
        digits_lt(n_max=150, test_per_class=50)


def test_h2t_profile_cli(tmp_path):
    exe = shutil.which('h2t-profile', path=str(Path(sys.executable).parent))
    out = subprocess.run(
        [exe, '--out', 'prof', '--imb-factor', '10'], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert f'training images, per class: {lt_counts(100, 10, 10)}' in out.stdout
    assert (
        'CIFAR-100-LT IF=100: 10,847 training images' in out.stdout and 'paper split (index ranges 36/71)' in out.stdout
    )
    assert (tmp_path / 'prof' / 'class_profile.png').stat().st_size > 10_000
