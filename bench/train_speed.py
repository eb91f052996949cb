"""Training throughput: the reference input pipeline against h2t_nb's device-resident one, same model, same run.

    python bench/train_speed.py --quick      # CPU check, under 3 minutes on 2 cores
    python bench/train_speed.py              # on a GPU: also AMP (bf16) + channels_last, and + torch.compile

Data: CIFAR-100-LT IF=100 shapes and exact class counts with random pixels (10,847 training images), ResNet-32.
(a) reference: the official code's pipeline, a torchvision DataLoader that builds a PIL image per item and runs per-image
    transforms (RandomCrop(32, 4), RandomHorizontalFlip, ToImage, ToDtype, Normalize) in worker processes, fp32;
(b) h2t_nb: the whole training set as one uint8 tensor on the device, batched crop/flip/normalise, fp32.
Both drive the same steps: stage 1 (mixup + cross-entropy, all parameters, SGD) and a stage-2 H2T step (two streams
through the frozen backbone with shift-BN, h2t_fuse, the head, SGD). Prints images/s, epoch time, and `speedup N`
(b over a) for each stage. Ratios come from one run, on one machine, back to back.
"""
import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from h2t_nb.losses import mixup, mixup_loss
from h2t_nb.models import freeze_backbone, resnet32
from h2t_nb.pipeline import CIFAR_MEAN, CIFAR_STD, Augment, DevicePipeline
from h2t_nb.samplers import DualStreamDataset, DualStreamSampler, InstanceSampler
from h2t_nb.datasets import synthetic_cifar
from h2t_nb.fusion import H2T
from h2t_nb.train import Stage2Forward


class PILImages(Dataset):
    "What torchvision's CIFAR100 does per item: a PIL image from the uint8 array, then the transform."
    def __init__(self, images_hwc, targets, transform): self.images, self.targets, self.transform = images_hwc, targets, transform
    def __len__(self): return len(self.targets)
    def __getitem__(self, i): return self.transform(Image.fromarray(self.images[i])), int(self.targets[i])


def reference_batches(dataset, indices, batch_size, workers, device):
    pairs = indices.ndim == 2
    loader = DataLoader(DualStreamDataset(dataset) if pairs else dataset, batch_size=batch_size, drop_last=True,
                        sampler=[tuple(p) for p in indices.tolist()] if pairs else indices.tolist(), num_workers=workers,
                        pin_memory=device.type == 'cuda', persistent_workers=False, prefetch_factor=4 if workers else None)
    for batch in loader: yield tuple(t.to(device, non_blocking=True) for t in batch)


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def measure(batches, step, n_steps, warmup, device):
    "Images per second over `n_steps` steps after `warmup` steps (the loader's start-up included in neither)."
    it = iter(batches)
    for _ in range(warmup): step(next(it))
    sync(device); start, images = time.perf_counter(), 0
    for _ in range(n_steps):
        batch = next(it); step(batch); images += len(batch[0])
    sync(device)
    return images / (time.perf_counter() - start)


def make_steps(device, amp, channels_last, compile_mode, device_draws):
    torch.manual_seed(0)
    model = resnet32(100).to(device)
    if channels_last: model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model
    perm_gen = torch.Generator(device=device).manual_seed(0) if device_draws else None   # mixup partners drawn on the device
    fused = device.type == 'cuda'   # as the trainer: one kernel for the SGD update on a GPU
    opt1 = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4, fused=fused)
    rng = np.random.default_rng(0)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def stage1(batch):
        x, y = batch[0], batch[1]
        if channels_last: x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            x, ya, yb, lam = mixup(x, y, 1.0, rng, perm_gen)
            loss = mixup_loss(forward(x), ya, yb, lam)
        opt1.zero_grad(set_to_none=True); loss.backward(); opt1.step()

    model2 = resnet32(100).to(device)
    if channels_last: model2 = model2.to(memory_format=torch.channels_last)
    model2.train(); params = freeze_backbone(model2, shift_bn=True)
    if compile_mode: model2.forward_features = torch.compile(model2.forward_features, mode=compile_mode)
    net2 = Stage2Forward(model2, H2T(0.25))
    opt2 = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=5e-4, fused=fused)
    gen = torch.Generator(device=device).manual_seed(0)

    def stage2(batch):
        x_b, y_b, x_i = batch[0], batch[1], batch[2]
        if channels_last: x_b, x_i = (t.contiguous(memory_format=torch.channels_last) for t in (x_b, x_i))
        with autocast(): loss = F.cross_entropy(net2(x_b, x_i, generator=gen), y_b)
        opt2.zero_grad(set_to_none=True); loss.backward(); opt2.step()
    return stage1, stage2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='few steps, CPU only: a check that runs in minutes')
    parser.add_argument('--steps', type=int, default=None, help='timed steps per measurement')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1), help='reference DataLoader workers')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--variants', default=None, help='which variants to run, e.g. "abe" (default: all for the device)')
    args = parser.parse_args()
    device = torch.device('cpu' if args.quick else args.device)
    steps = args.steps or (8 if device.type == 'cpu' else 60)
    warmup = 2 if device.type == 'cpu' else 10

    train, _, _ = synthetic_cifar(100, 100)
    n = len(train)
    total = (steps + warmup + 1) * args.batch   # enough indices for warm-up and the timed steps
    instance = InstanceSampler(train.targets, num_samples=total, seed=0).indices()
    dual = DualStreamSampler(train.targets, num_samples=total, seed=0).indices()
    tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToImage(),
                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)])
    reference = PILImages(train.images.permute(0, 2, 3, 1).numpy(), train.targets, tf)
    ours = DevicePipeline(train, Augment(4, True, CIFAR_MEAN, CIFAR_STD), device)
    gen = lambda: torch.Generator(device=device).manual_seed(0)

    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU {platform.machine()} ({torch.get_num_threads()} threads)'
    print(f'{name}; torch {torch.__version__}; ResNet-32, batch {args.batch}, {n:,} training images (CIFAR-100-LT IF=100); '
          f'{steps} timed steps after {warmup} warm-up; reference DataLoader workers: {args.workers}')
    variants = [('(a) reference: DataLoader + PIL + per-image transforms, fp32', 'ref', False, False, None),
                ('(b) h2t_nb: device-resident data, batched augmentation, fp32', 'ours', False, False, None)]
    if device.type == 'cuda':
        variants += [('(c) h2t_nb + bf16 autocast + channels_last', 'ours', True, True, None),
                     ('(d) h2t_nb + bf16 + channels_last + torch.compile', 'ours', True, True, 'default'),
                     ('(e) h2t_nb + bf16 + channels_last + torch.compile(mode="reduce-overhead"): CUDA graphs', 'ours', True, True, 'reduce-overhead')]
    if args.variants: variants = [v for v in variants if v[0][1] in args.variants + 'a']   # the reference is always measured
    results = {}
    for label, pipe, amp, cl, comp in variants:
        stage1, stage2 = make_steps(device, amp, cl, comp, device_draws=pipe == 'ours' and device.type == 'cuda')
        src = (lambda idx: reference_batches(reference, idx, args.batch, args.workers, device)) if pipe == 'ref' else \
              (lambda idx: ours.batches(idx, args.batch, train=True, generator=gen()))
        start = time.perf_counter()
        s1 = measure(src(instance), stage1, steps, warmup, device)
        s2 = measure(src(dual), stage2, steps, warmup, device)
        results[label] = (s1, s2)
        print(f'{label}\n    stage 1: {s1:9.0f} images/s, epoch {n / s1:7.2f} s   |   stage 2 (H2T, 2 streams): {s2:9.0f} pairs/s, '
              f'epoch {n / s2:7.2f} s   [{time.perf_counter() - start:.0f} s]', flush=True)
    ref1, ref2 = results[variants[0][0]]
    for label, (s1, s2) in list(results.items())[1:]:
        print(f'speedup {s1 / ref1:.2f}  (stage 1, {label[:3]} over (a));  stage-2 speedup {s2 / ref2:.2f}')


if __name__ == '__main__':
    main()
