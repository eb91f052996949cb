"Shared fixtures: small datasets in the real on-disk formats, the threads of the commands tests start, a weight diff."

import os

# Under pytest-xdist (README's `-n 2`) two workers share the two cores: each process, and every command a test starts,
# runs one thread, or OpenMP's threads spin against each other. Set before torch is imported, here or in a subprocess.
# A cell that pins two threads (08_table reproduces a measured table) then shares a core: passive waits keep its
# threads from spinning while the other worker computes.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ.update(OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE')
THREADS = os.environ.get('OMP_NUM_THREADS', '2')  # the commands' threads: two when tests run one at a time

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def command_env(**variables) -> dict:
    "The environment of a command a test starts: this one, the commands' threads, no warnings, and `variables`."
    return {**os.environ, 'OMP_NUM_THREADS': THREADS, 'PYTHONWARNINGS': 'ignore', **variables}


def run_command(command: str, *args, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    "A console script beside this Python (the venv's), run as a user runs it: its exit status and its output."
    exe = shutil.which(command, path=str(Path(sys.executable).parent)) or command
    env = env or command_env()
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, env=env)


def learnt_changes(before: dict, after: dict) -> set:
    "Names of the weights that differ between two state dicts, BatchNorm's running statistics left out."
    return {k for k in after if not torch.equal(after[k], before[k]) and 'running' not in k and 'num_batches' not in k}


@pytest.fixture
def cifar_md5_off(monkeypatch):
    "torchvision checks each CIFAR file's md5; our tiny files differ, so only check that they exist."
    monkeypatch.setattr(tv_cifar, 'check_integrity', lambda path, md5=None: os.path.isfile(path))


def write_cifar(root, num_classes, per_class_train, per_class_test, seed=0):
    "Write a tiny CIFAR-10 or CIFAR-100 in torchvision's on-disk layout; pixel values encode (class, image) for checks."
    rng = np.random.RandomState(seed)

    def batch(per_class):
        labels = np.repeat(np.arange(num_classes), per_class)
        rng.shuffle(labels)
        data = rng.randint(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        data[:, 0] = labels  # first red pixel = label, so tests can check images follow their labels
        return data, labels.tolist()

    if num_classes == 100:
        folder = Path(root) / 'cifar-100-python'
        folder.mkdir(parents=True)
        for name, per in (('train', per_class_train), ('test', per_class_test)):
            data, labels = batch(per)
            with open(folder / name, 'wb') as f:
                pickle.dump({'data': data, 'fine_labels': labels, 'coarse_labels': [0] * len(labels)}, f)
        with open(folder / 'meta', 'wb') as f:
            pickle.dump({'fine_label_names': [f'c{i}' for i in range(100)], 'coarse_label_names': ['x']}, f)
    else:
        folder = Path(root) / 'cifar-10-batches-py'
        folder.mkdir(parents=True)
        data, labels = batch(per_class_train)
        for i, chunk in enumerate(np.array_split(np.arange(len(labels)), 5), 1):
            with open(folder / f'data_batch_{i}', 'wb') as f:
                pickle.dump({'data': data[chunk], 'labels': [labels[j] for j in chunk]}, f)
        data, labels = batch(per_class_test)
        with open(folder / 'test_batch', 'wb') as f:
            pickle.dump({'data': data, 'labels': labels}, f)
        with open(folder / 'batches.meta', 'wb') as f:
            pickle.dump({'label_names': [f'c{i}' for i in range(10)]}, f)
    return Path(root)


def write_list_dataset(root, labels, list_name='train.txt', size=8):
    "Write one small RGB JPEG per label under root/train/<label>/ and a `relative/path label` list file."
    root = Path(root)
    lines = []
    for i, label in enumerate(labels):
        rel = Path('train') / str(label) / f'{i}.jpg'
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (size, size), color=(label * 10 % 256, i % 256, 0)).save(root / rel)
        lines.append(f'{rel.as_posix()} {label}')
    (root / list_name).write_text('\n'.join(lines) + '\n')
    return root / list_name
