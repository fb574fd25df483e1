import math

import pytest
import torch

from anoncodec.config import RoiLossConfig
from anoncodec.roi.loss import RoiObjective, bpp_from_likelihoods, roi_loss
from anoncodec.roi.metrics import box_mask, masked_mse, psnr, region_metrics


def pair():
    x = torch.zeros(2, 3, 4, 4)
    x_hat = torch.zeros(2, 3, 4, 4)
    x_hat[0, :, 0:2, 0:2] = 0.5  # MSE 0.25 in the top-left 2x2
    return x_hat, x


def boxes(*b):
    return torch.tensor(b, dtype=torch.float32).reshape(-1, 4)


def test_hand_computed_values():
    x_hat, x = pair()
    b = [boxes([0, 0, 2, 2], [2, 2, 4, 4]), boxes()]
    # image 0: box A has MSE .25, box B has MSE 0; image 1 has no boxes and counts 0
    assert roi_loss(x_hat, x, b, k=0.0).item() == pytest.approx(((0.25 + 0.0) / 2 + 0) / 2)
    assert roi_loss(x_hat, x, b, k=1.0).item() == pytest.approx(((0.75 + 1.0) / 2 + 0) / 2)


def test_boxes_are_clipped_and_empty_ones_ignored():
    x_hat, x = pair()
    clipped = [boxes([-5, -5, 2, 2], [10, 10, 20, 20]), boxes()]
    assert roi_loss(x_hat, x, clipped, k=1.0).item() == pytest.approx(0.75 / 2)
    fractional = [boxes([0.2, 0.2, 1.5, 1.5]), boxes()]  # covers pixels 0..1
    assert roi_loss(x_hat, x, fractional, k=0.0).item() == pytest.approx(0.25 / 2)


def test_k1_rewards_error_gradient_direction():
    x = torch.full((1, 3, 4, 4), 0.5)
    x_hat2 = (x + 0.1).requires_grad_(True)
    roi_loss(x_hat2, x, [boxes([0, 0, 4, 4])], k=1.0).backward()
    assert (x_hat2.grad < 0).all()  # gradient descent moves x_hat further away from x


def test_shape_errors():
    x_hat, x = pair()
    with pytest.raises(ValueError):
        roi_loss(x_hat, x, [boxes()], k=0)
    with pytest.raises(ValueError):
        roi_loss(x_hat[:, :, :2], x, [boxes(), boxes()], k=0)


def test_bpp_from_likelihoods():
    lk = {"y": torch.full((1, 2, 2, 2), 0.5), "z": torch.full((1, 1, 1, 1), 0.25)}
    # 8 symbols x 1 bit + 1 symbol x 2 bits over 4 pixels
    assert bpp_from_likelihoods(lk, 4).item() == pytest.approx(10 / 4)


def test_objective_combines_weighted_terms():
    x_hat, x = pair()
    cfg = RoiLossConfig(mse_weight=2.0, person_weight=0.5, head_weight=0.6, rate_weight=0.1)
    lk = {"y": torch.full((2, 1, 2, 2), 0.5)}
    persons = [boxes([0, 0, 4, 4]), boxes()]
    heads = [boxes([0, 0, 2, 2]), boxes()]
    t = RoiObjective(cfg)(x_hat, x, lk, persons, heads)
    mse = 0.25 * 4 / 32 / 1  # 4 of 16 pixels at .25 in one of two images
    assert t.mse.item() == pytest.approx(mse / 1)
    assert t.person_roi.item() == pytest.approx((0.25 * 4 / 16) / 2)
    assert t.head_roi.item() == pytest.approx(0.75 / 2)
    assert t.bpp.item() == pytest.approx(8 / 32)
    expected = 2.0 * t.mse + 0.5 * t.person_roi + 0.6 * t.head_roi + 0.1 * t.bpp
    assert t.loss.item() == pytest.approx(expected.item())


def test_region_metrics():
    x_hat, x = pair()
    mask = box_mask(boxes([0, 0, 2, 2]), 4, 4)
    assert mask.sum() == 4
    assert masked_mse(x_hat[0], x[0], ~mask) == 0
    assert psnr(0.01) == pytest.approx(20)
    m = region_metrics(x_hat[:1], x[:1], [boxes([0, 0, 2, 2])])
    assert m["psnr_outside_heads"] == math.inf and m["mse_inside_heads"] == pytest.approx(0.25)


# -- head rate: bits of the latent cells under head boxes --------------------------------
def test_latent_cell_mask_matches_the_guard_mask():
    import numpy as np

    from anoncodec.edge.guard import latent_mask
    from anoncodec.roi.loss import latent_cell_mask

    rng = np.random.default_rng(0)
    for _ in range(50):
        xy = rng.uniform(-10, 90, size=(3, 2))
        wh = rng.uniform(0, 40, size=(3, 2))
        b = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        for margin in (0, 1):
            ours = latent_cell_mask(torch.from_numpy(b), (5, 6), 16, margin).numpy()
            assert (ours == latent_mask(b, (5, 6), 16, margin)).all()


def test_head_rate_hand_computed():
    from anoncodec.roi.loss import head_rate

    lk = torch.full((2, 3, 2, 2), 0.5)  # 1 bit per element: 3 bits per cell
    lk[0, :, 0, 0] = 0.25  # cell (0, 0) of image 0: 2 bits x 3 channels = 6 bits
    heads = [boxes([0, 0, 16, 16]), boxes([16, 16, 32, 32], [0, 16, 8, 20])]
    bits, cells = head_rate(lk, heads, factor=16)
    # image 0: cell (0,0) = 6 bits; image 1: cells (1,1) and (1,0) = 3 bits each
    assert cells.item() == 3
    assert bits.item() == pytest.approx((6 + 3 + 3) / 3)
    # a margin of one cell takes every cell of image 0 and image 1
    bits_m, cells_m = head_rate(lk, heads, factor=16, margin=1)
    assert cells_m.item() == 8
    assert bits_m.item() == pytest.approx((6 + 3 * 3 + 4 * 3) / 8)


def test_head_rate_without_heads_is_zero_and_gradient_points_to_likelier_symbols():
    from anoncodec.roi.loss import head_rate

    lk = torch.full((1, 2, 2, 2), 0.5, requires_grad=True)
    bits, cells = head_rate(lk, [boxes()], factor=16)
    assert bits.item() == 0 and cells.item() == 0
    bits, _ = head_rate(lk, [boxes([0, 0, 10, 10])], factor=16)
    bits.backward()
    grad = lk.grad
    assert (grad[0, :, 0, 0] < 0).all()  # raising the likelihood under the head lowers the bits
    assert (grad[0, :, 1, 1] == 0).all()  # the background is not touched by this term
    with pytest.raises(ValueError):
        head_rate(lk, [boxes(), boxes()], factor=16)


def test_objective_adds_the_weighted_head_rate():
    x = torch.zeros(1, 3, 32, 32)
    x_hat = torch.full((1, 3, 32, 32), 0.1)
    lk = {"y": torch.full((1, 4, 2, 2), 0.5)}
    heads = [boxes([0, 0, 16, 16])]
    base = RoiObjective(RoiLossConfig(), factor=16)(x_hat, x, lk, [boxes()], heads)
    cfg = RoiLossConfig(head_rate_weight=0.5)
    t = RoiObjective(cfg, factor=16)(x_hat, x, lk, [boxes()], heads)
    assert t.head_bits.item() == pytest.approx(4.0)  # 4 channels x 1 bit in one cell
    assert (t.loss - base.loss).item() == pytest.approx(0.5 * 4.0)


def test_head_median_distance_hand_computed():
    from anoncodec.roi.loss import head_median_distance

    y = torch.zeros(2, 2, 2, 2)
    y[0, 0, 0, 0] = 3.0  # channel 0 median 1: distance 2 -> 4
    y[0, 1, 0, 0] = -1.0  # channel 1 median -1: distance 0
    y[1, :, 1, 1] = 5.0  # not under a head
    medians = torch.tensor([1.0, -1.0])
    heads = [boxes([0, 0, 10, 10]), boxes()]
    assert head_median_distance(y, medians, heads, factor=16).item() == pytest.approx((4 + 0) / 2)
    assert head_median_distance(y, medians, [boxes(), boxes()], factor=16).item() == 0


def test_objective_needs_the_latent_for_the_median_term():
    x = torch.zeros(1, 3, 32, 32)
    lk = {"y": torch.full((1, 2, 2, 2), 0.5)}
    heads = [boxes([0, 0, 16, 16])]
    objective = RoiObjective(RoiLossConfig(head_median_weight=2.0), factor=16)
    with pytest.raises(ValueError):
        objective(x, x, lk, [boxes()], heads)
    y = torch.ones(1, 2, 2, 2)
    t = objective(x, x, lk, [boxes()], heads, y=y, medians=torch.zeros(2))
    assert t.head_median.item() == pytest.approx(1.0)
    base = RoiObjective(RoiLossConfig(), factor=16)(x, x, lk, [boxes()], heads)
    assert (t.loss - base.loss).item() == pytest.approx(2.0)


def test_training_forward_exposes_latent_and_medians():
    from tests.conftest import tiny_codec

    model = tiny_codec()
    out = model(torch.rand(1, 3, 32, 32))
    assert out["y"].shape == out["likelihoods"]["y"].shape
    assert out["medians"].shape == (out["y"].shape[1],) and not out["medians"].requires_grad


def test_gate_loss_hand_computed():
    from anoncodec.roi.loss import gate_loss

    logits = torch.tensor([[[0.0, 0.0]]])
    target = torch.tensor([[[True, False]]])
    # BCE at p = 0.5 is ln 2 per cell; the positive counts pos_weight times
    assert gate_loss(logits, target, 3.0).item() == pytest.approx((3 * math.log(2) + math.log(2)) / 2)
    with pytest.raises(ValueError):
        gate_loss(logits, target[..., :1], 1.0)


def test_head_cells_per_image():
    from anoncodec.roi.loss import head_cells

    cells = head_cells([boxes([0, 0, 10, 10]), boxes(), boxes([17, 0, 40, 5])], (2, 3), factor=16)
    assert cells.shape == (3, 2, 3)
    assert cells[0].sum() == 1 and cells[0, 0, 0]
    assert not cells[1].any()
    assert cells[2, 0, 1] and cells[2, 0, 2] and cells[2].sum() == 2


def test_fill_heads_paints_the_mean_colour():
    from anoncodec.roi.loss import fill_heads

    x = torch.zeros(1, 3, 8, 8)
    x[0, 0, 0, 0] = 1.0
    out = fill_heads(x, [boxes([0, 0, 2, 2])])
    assert torch.allclose(out[0, 0, :2, :2], torch.full((2, 2), 0.25))
    assert torch.equal(out[0, :, 2:, :], x[0, :, 2:, :]) and x[0, 0, 0, 0] == 1.0


def test_objective_gate_term_and_fill_target():
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, :16, :16] = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    lk = {"y": torch.full((1, 2, 2, 2), 0.5)}
    heads = [boxes([0, 0, 16, 16])]
    logits = torch.zeros(1, 2, 2)
    with pytest.raises(ValueError, match="gated"):
        RoiObjective(RoiLossConfig(gate_weight=1.0), factor=16)(x, x, lk, [boxes()], heads)
    t = RoiObjective(RoiLossConfig(gate_weight=2.0, gate_pos_weight=1.0), factor=16)(
        x, x, lk, [boxes()], heads, gate_logits=logits)
    assert t.gate.item() == pytest.approx(math.log(2))
    filled = RoiObjective(RoiLossConfig(head_target="fill"), factor=16)
    from anoncodec.roi.loss import fill_heads

    # the flat patch is what a fill-trained decoder should produce; the face itself is error
    assert filled(fill_heads(x, heads), x, lk, [boxes()], heads).mse.item() == pytest.approx(0.0)
    assert filled(x, x, lk, [boxes()], heads).mse.item() > 0


def test_fill_target_head_term_asks_for_the_flat_patch():
    from anoncodec.roi.loss import fill_heads

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    lk = {"y": torch.full((1, 2, 2, 2), 0.5)}
    heads = [boxes([4, 4, 20, 20])]
    objective = RoiObjective(RoiLossConfig(head_target="fill", head_weight=1.0, head_k=0.0), factor=16)
    assert objective(fill_heads(x, heads), x, lk, [boxes()], heads).head_roi.item() == pytest.approx(0.0)
    assert objective(x, x, lk, [boxes()], heads).head_roi.item() > 0.01  # the face itself is error
