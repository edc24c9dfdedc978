"""engines/antialias_kernels.py and one_pass_kernels.py: whatever the spans hold, no kernel reads outside its rows
(Triton's interpreter)."""

from __future__ import annotations

from tests.engines.kernels import run_interpreted


def test_made_up_spans_never_read_outside_the_rows():
    """AOTInductor runs the kernels at compile time on made-up inputs (integer ones zeros): spans of zeros or random
    frames must not send a load outside x's (or a's) rows. x and a are views into buffers whose margins hold NaN, so
    a read outside shows in the output; every method, both layouts, two-pass v1 and pairs."""
    run_interpreted(
        """
        from batchvoc.engines import fused_antialias as fa
        from batchvoc.models.activations import SnakeBeta
        from batchvoc.models.antialias import Activation1d
        from tests.engines.kernels import CHANNELS, FRAMES, RATE, ROWS

        T, G = FRAMES * RATE, 64  # samples per row; NaN margin on each side
        ref = fa.FusedActivation1d(Activation1d(SnakeBeta(CHANNELS, alpha_logscale=True)))
        alpha, inv = ref.act.params_fp32()

        def guarded(rows, channels, length, channels_last):
            gen = torch.Generator().manual_seed(length)
            shape = (rows, length + 2 * G, channels) if channels_last else (rows, channels, length + 2 * G)
            buf = torch.full(shape, float("nan"))
            if channels_last:
                buf[:, G:-G] = torch.randn(rows, length, channels, generator=gen)
                return buf[:, G:-G].transpose(1, 2)
            buf[:, :, G:-G] = torch.randn(rows, channels, length, generator=gen)
            return buf[:, :, G:-G]

        gen = torch.Generator().manual_seed(0)
        made_up = [torch.zeros(ROWS, 2, FRAMES, dtype=torch.int64),
                   torch.randint(-3 * FRAMES, 3 * FRAMES, (ROWS, 2, FRAMES), generator=gen)]
        tiles = {"v1": fa.TwoPass("v1", fa.Tile(32, 64, 4), fa.Tile(32, 64, 4)),
                 "pairs": fa.TwoPass("pairs", fa.Tile(32, 64, 4), fa.Tile(32, 64, 4))}
        for channels_last in (False, True):
            x = guarded(ROWS, CHANNELS, T, channels_last)
            a = guarded(ROWS, CHANNELS, 2 * T, channels_last)
            for valid in made_up:
                args = (x, alpha, inv, valid, RATE, ref.up_taps, ref.up_first, ref.down_taps, ref.down_left)
                for name, two_pass in tiles.items():
                    assert torch.isfinite(fa._triton_forward(*args, tiles=two_pass)).all(), (name, channels_last)
                    y = fa._launch_down(a, x, valid, RATE, ref.down_taps, ref.down_left, two_pass)
                    assert torch.isfinite(y).all(), (name, "down", channels_last)
                for method in fa.METHODS:
                    assert torch.isfinite(fa._one_pass_triton(*args, method)).all(), (method, channels_last)
        """
    )
