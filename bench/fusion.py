"""Benchmark the H2T operator and a ResNet-32 stage-2 step, as ratios measured in one run (not a test).

    python bench/fusion.py            # CPU, and CUDA too when present
    python bench/fusion.py --quick    # shorter timings

Prints:
  * `h2t_fuse` on a B×C×H×W map relative to a plain `clone()` of the same tensor (both write one new tensor);
  * a stage-2 step (frozen ResNet-32 with shift-BN, two streams, linear head, SGD) with H2T relative to the same step
    without fusion: the operator's overhead (target <= 5%);
  * the same H2T step relative to a single-stream DR step: the price of the method's second backbone forward.
"""
import argparse
import platform

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from h2t_nb.fusion import h2t_fuse
from h2t_nb.models import freeze_backbone, resnet32


def median_time(stmt, env, min_run_time):
    return Timer(stmt, globals=env).blocked_autorange(min_run_time=min_run_time).median


def bench(device, batch, min_run_time):
    torch.manual_seed(0)
    fused = torch.randn(batch, 64, 8, 8, device=device)
    fusing = torch.randn_like(fused)
    op = dict(h2t_fuse=h2t_fuse, fused=fused, fusing=fusing)
    t_clone = median_time('fused.clone()', op, min_run_time)
    t_fuse = median_time('h2t_fuse(fused, fusing, 0.3)', op, min_run_time)
    t_fuse_ps = median_time('h2t_fuse(fused, fusing, 0.3, per_sample=True)', op, min_run_time)

    model = resnet32(100).to(device).train()
    params = freeze_backbone(model, shift_bn=True)
    opt = torch.optim.SGD(params, lr=0.02, momentum=0.9)
    x_b, x_i = torch.randn(batch, 3, 32, 32, device=device), torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (batch,), device=device)

    def step(ratio=None, dual=True):
        with torch.no_grad():   # frozen backbone; shift-BN still updates the running statistics of both streams
            f_b = model.forward_features(x_b)
            f_i = model.forward_features(x_i) if dual else None
        f = h2t_fuse(f_b, f_i, ratio) if ratio is not None else f_b
        loss = F.cross_entropy(model.forward_head(f), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()

    env = dict(step=step)
    for _ in range(3): step(0.3)   # warm-up (allocator, cuDNN autotuning)
    t_h2t = median_time('step(0.3)', env, min_run_time)
    t_dual = median_time('step(None)', env, min_run_time)
    t_dr = median_time('step(None, dual=False)', env, min_run_time)
    name = torch.cuda.get_device_name() if device == 'cuda' else f'CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)'
    print(f'\n{name}, batch {batch}, maps {tuple(fused.shape)}')
    print(f'  h2t_fuse / clone                          : {t_fuse / t_clone:5.2f}x  ({t_fuse * 1e6:.0f} us vs {t_clone * 1e6:.0f} us)')
    print(f'  h2t_fuse per-sample / clone               : {t_fuse_ps / t_clone:5.2f}x')
    print(f'  stage-2 step, H2T / same step without fusion: {t_h2t / t_dual:5.3f}x  (overhead {100 * (t_h2t / t_dual - 1):+.1f}%, target <= +5%)')
    print(f'  stage-2 step, H2T (2 forwards) / DR (1 forward): {t_h2t / t_dr:5.2f}x')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='shorter timings')
    parser.add_argument('--batch', type=int, default=128)
    args = parser.parse_args()
    run_time = 0.3 if args.quick else 1.5
    bench('cpu', args.batch, run_time)
    if torch.cuda.is_available(): bench('cuda', args.batch, run_time)
