"""The fixed graph and the dense Chebyshev convolution against torch-geometric."""
import numpy as np
import pytest
import torch
from torch_geometric.nn import ChebConv

from benchmarks.reference import pyg_layers
from chexmask_export.model import DenseChebConv
from chexmask_export import graph
from chexmask_rt.anatomy import NUM_LANDMARKS, organ_slices


def test_graph_shapes_and_degrees():
    a, ad, u = graph.fine_adjacency(), graph.coarse_adjacency(), graph.coarse_to_fine()
    assert a.shape == (NUM_LANDMARKS, NUM_LANDMARKS) and ad.shape == (60, 60) and u.shape == (120, 60)
    assert np.all(a.sum(1) == 2) and np.all(ad.sum(1) == 2)
    assert np.allclose(u.sum(1), 1.0)
    assert graph.organ_sizes(1) == [22, 25, 13]
    # no edges between organs
    sl = list(organ_slices().values())
    for i, s in enumerate(sl):
        for t in sl[i + 1:]:
            assert a[s, t].sum() == 0


def test_upsampling_rule():
    u = graph.upsampling_matrix([5], [3])
    expected = np.array([[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, .5, .5], [0, 0, 1]])
    np.testing.assert_array_equal(u, expected)
    # odd node at the end of a cycle wraps to coarse node 0
    np.testing.assert_array_equal(graph.upsampling_matrix([4], [2])[3], [0.5, 0.5])


def _edge_index(a: np.ndarray) -> torch.Tensor:
    rows, cols = np.nonzero(a)
    return torch.tensor(np.stack([rows, cols]), dtype=torch.long)


@pytest.mark.parametrize("adjacency", ["fine", "coarse"])
@pytest.mark.parametrize("k,bias", [(6, True), (3, False), (1, True)])
def test_dense_chebconv_matches_torch_geometric(adjacency, k, bias):
    a = graph.fine_adjacency() if adjacency == "fine" else graph.coarse_adjacency()
    torch.manual_seed(k)
    with pyg_layers():
        ref = ChebConv(7, 5, K=k, normalization="sym", bias=bias)
    with torch.no_grad():
        if bias:
            ref.bias.normal_()
    dense = DenseChebConv(a, 7, 5, k, bias=bias)
    missing = dense.load_state_dict(ref.state_dict(), strict=True)
    assert not missing.missing_keys
    x = torch.randn(3, a.shape[0], 7)
    with torch.no_grad():
        expected = torch.stack([ref(xi, _edge_index(a)) for xi in x])
        got = dense(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
