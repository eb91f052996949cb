"""Your own images, in memory or streamed: the two ways `00a_own_data` reads a folder, timed in one run.

    python bench/own_data.py            # about 2 minutes on 2 CPU cores

Data: a folder of 3,000-odd real images written here from scikit-learn's digits (10 classes, long-tailed from 900 to
45 images, PNG and JPEG, 8 to 40 pixels, grey / RGB / RGBA / palette), read at 32×32.
(a) in memory: every image decoded once into one uint8 tensor; batches cut, cropped, flipped and normalised by
    `DevicePipeline` (what `--pipeline auto` picks for data that fits in 4 GiB);
(b) streamed: each image's header checked once; a DataLoader's workers (2 here) decode, crop, flip and normalise each
    batch per image (`--pipeline loader`, what a dataset over the budget gets).
Prints the one-off cost of each (decode / check), then per epoch the data alone and the data with a ResNet-32
training step (forward, backward, SGD), and the ratios (b) / (a). Same images, same sampler order, same machine, back to
back.
"""

import platform
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from sklearn.datasets import load_digits

from h2t_nb.datasets import IMAGENET_MEAN, IMAGENET_STD
from h2t_nb.models import resnet32
from h2t_nb.own_data import image_folder_data
from h2t_nb.pipeline import Augment, DevicePipeline, LoaderPipeline

SIZE, BATCH, WORKERS = 32, 128, 2


def write_folder(root: Path) -> int:
    "Ten long-tailed classes of real digits, each image at its own size, mode and format."
    digits = load_digits()
    modes = ('L', 'RGB', 'RGBA', 'P')
    total = 0
    for c in range(10):
        sources = digits.images[digits.target == c]
        n = round(900 * (1 / 20) ** (c / 9))
        folder = root / 'train' / f'digit_{c}'
        folder.mkdir(parents=True)
        for i in range(n):
            image = Image.fromarray((sources[i % len(sources)] * 15).astype('uint8'), 'L')
            image = image.resize((8 + 8 * (i % 5),) * 2).convert(modes[i % 4])
            image.save(folder / f'{i}.{"jpg" if image.mode in ("L", "RGB") and i % 2 == 0 else "png"}')
        total += n
    return total


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def epoch(pipeline, indices, model=None, optimiser=None) -> int:
    "One pass over `indices` in batches; with a model, a training step per batch."
    seen = 0
    for x, y in pipeline.batches(indices, BATCH, train=True, generator=torch.Generator().manual_seed(0)):
        if model is not None:
            optimiser.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
        seen += len(y)
    return seen


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / 'digits'
        total = write_folder(root)
        memory, decode_s = timed(lambda: image_folder_data(root, SIZE, in_memory=True))
        streamed, check_s = timed(lambda: image_folder_data(root, SIZE, in_memory=False))
        augment = Augment(padding=4, flip=True, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        pipelines = {
            'in memory': DevicePipeline(memory.train, augment),
            'streamed': LoaderPipeline(
                streamed.train,
                augment.transform((SIZE, SIZE)),
                augment.transform((SIZE, SIZE), train=False),
                num_workers=WORKERS,
            ),
        }
        order = torch.randperm(len(memory.train), generator=torch.Generator().manual_seed(0))
        print(
            f'{total:,} files, {len(order):,} training images at {SIZE}×{SIZE}, batch {BATCH}, '
            f'{torch.get_num_threads()} threads, {WORKERS} DataLoader workers, {platform.processor() or platform.machine()}'
        )
        print(f'one-off: decode into memory {decode_s:.2f} s, check headers to stream {check_s:.2f} s')
        results = {}
        for name, pipeline in pipelines.items():
            epoch(pipeline, order[: 4 * BATCH])  # warm-up: workers, allocator
            _, data_s = timed(lambda: epoch(pipeline, order))
            model = resnet32(10)
            optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            _, train_s = timed(lambda: epoch(pipeline, order, model, optimiser))
            results[name] = data_s, train_s
            print(
                f'{name:>9}: data alone {data_s:6.2f} s/epoch ({len(order) / data_s:8,.0f} img/s); '
                f'with a ResNet-32 step {train_s:6.2f} s/epoch ({len(order) / train_s:6,.0f} img/s)'
            )
        (mem_data, mem_train), (str_data, str_train) = results['in memory'], results['streamed']
        print(
            f'ratio streamed / in memory: data alone {str_data / mem_data:.1f}×, with a ResNet-32 step '
            f'{str_train / mem_train:.2f}×'
        )


if __name__ == '__main__':
    main()
