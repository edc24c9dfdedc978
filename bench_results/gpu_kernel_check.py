"""GPU check of the fused anti-alias kernels against the reference Activation1d, and of the fused resblocks (pointer
loads and block copies) against ResBlock1 / ResBlock2 (fp32/fp16/bf16, spans, layouts).

For the GPU machine, which has no pytest: PYTHONPATH=. python3 bench_results/gpu_kernel_check.py
"""

import torch

from batchvoc.engines.fused_antialias import FusedActivation1d
from batchvoc.models.activations import Snake, SnakeBeta
from batchvoc.models.antialias import Activation1d
from batchvoc.models.span import Span

C, R, F, B = 48, 4, 40, 3
for kind in (Snake, SnakeBeta):
    act = kind(C, alpha_logscale=True)
    with torch.no_grad():
        for p in act.parameters():
            p.normal_(0, 0.5)
    ref = Activation1d(act).eval()
    x = torch.randn(B, C, F * R)
    v = torch.tensor([[0, F], [3, F - 2], [5, 11]]).unsqueeze(-1).repeat(1, 1, F)
    v[1, :, :12] = torch.tensor([2, 12]).view(2, 1)
    v[1, :, 12:] = torch.tensor([14, 27]).view(2, 1)
    for valid in (None, v):
        want = ref(x, Span(valid), R)
        f = FusedActivation1d(ref).cuda()
        for dt, tol in ((torch.float32, 1e-5), (torch.float16, 2e-2), (torch.bfloat16, 1e-1)):
            for inp in (x, x.transpose(1, 2).contiguous().transpose(1, 2)):
                got = f.to(dt)(inp.cuda().to(dt), Span(None if valid is None else valid.cuda()), R).float().cpu()
                err = (got - want).abs().max().item() / max(1.0, want.abs().max().item())
                assert err <= tol, (kind.__name__, dt, err)
        print(kind.__name__, "span" if valid is not None else "none", "ok")

from batchvoc.engines.fused_resblock import FusedResBlock  # noqa: E402
from batchvoc.models.hifigan import ResBlock1, ResBlock2  # noqa: E402

for kind, C in ((ResBlock1, 16), (ResBlock2, 32), (ResBlock1, 24), (ResBlock1, 32), (ResBlock1, 64), (ResBlock2, 64)):
    block = kind(C, 7, [1, 3, 5])
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, (C * 7) ** -0.5)
    block.eval()
    x = torch.randn(B, C, F * R)
    for valid in (None, v):
        want = Span(valid).zero(block(x, Span(valid), R), R)
        f = FusedResBlock(block).cuda()
        for dt, tol in ((torch.float32, 1e-5), (torch.float16, 2e-2), (torch.bfloat16, 1e-1)):
            for inp in (x, x.transpose(1, 2).contiguous().transpose(1, 2)):
                got = f.to(dt)(inp.cuda().to(dt), Span(None if valid is None else valid.cuda()), R).float().cpu()
                err = (got - want).abs().max().item() / max(1.0, want.abs().max().item())
                assert err <= tol, (kind.__name__, C, dt, err)
        print(kind.__name__, C, "span" if valid is not None else "none", "ok")
print("GPU kernels OK")
