import torch

from batchvoc.models.span import Span


def test_none_is_identity():
    x = torch.randn(2, 3, 10)
    assert Span(None).zero(x, 2) is x and Span(None).edge(x, 2) is x


def test_single_segment_zero_and_edge():
    x = torch.arange(12.0).view(1, 1, 12)
    span = Span(torch.tensor([[1, 3]]))
    assert span.zero(x, 2).tolist() == [[[0, 0, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0]]]
    assert span.edge(x, 2).tolist() == [[[2, 2, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5]]]


def test_per_frame_bounds_equal_single_segment_form():
    x = torch.randn(2, 4, 24)
    single = torch.tensor([[2, 5], [0, 6]])
    per_frame = single.view(2, 2, 1).expand(2, 2, 8)
    for rate in (1, 3):
        y = x[..., : 8 * rate]
        assert torch.equal(Span(single).zero(y, rate), Span(per_frame).zero(y, rate))
        assert torch.equal(Span(single).edge(y, rate), Span(per_frame).edge(y, rate))


def test_two_utterances_in_one_row_keep_their_own_edges():
    x = torch.arange(12.0).view(1, 1, 12)
    # frames 0-1: utterance [0, 2); frame 2: gap, nearer the second; frames 3-4: utterance [3, 5); frame 5: gap
    bounds = torch.tensor([[[0, 0, 3, 3, 3, 3], [2, 2, 5, 5, 5, 5]]])
    span = Span(bounds)
    assert span.zero(x, 2).tolist() == [[[0, 1, 2, 3, 0, 0, 6, 7, 8, 9, 0, 0]]]
    assert span.edge(x, 2).tolist() == [[[0, 1, 2, 3, 6, 6, 6, 7, 8, 9, 9, 9]]]
