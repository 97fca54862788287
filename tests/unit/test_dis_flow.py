"""dis_flow: the backward-flow convention, the validity mask and warping (shared by the fusion and the evaluator)."""

from __future__ import annotations

import cv2
import numpy as np

from vretouch_cli.dis_flow import FlowEstimator, sampling_maps, warp


def _pair(shift: int = 3):
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur((rng.random((160, 200)) * 255).astype(np.float32), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    prev = np.ascontiguousarray(big[16:144, 16:176])
    cur = np.ascontiguousarray(big[16:144, 16 + shift : 176 + shift])  # the content moves left by `shift` px
    return cur, prev


def test_a_shift_is_found_with_the_backward_convention_and_warping_undoes_it():
    cur, prev = _pair(3)
    (flow, valid), (back, valid_back) = FlowEstimator().pair(cur, prev)
    inner = (slice(20, -20), slice(20, -20))
    # cur(x) ≈ prev(x + flow(x)): the point of cur at x was at x + 3 in prev
    assert abs(float(np.median(flow[inner][..., 0])) - 3.0) < 0.3
    assert abs(float(np.median(flow[inner][..., 1]))) < 0.3
    assert abs(float(np.median(back[inner][..., 0])) + 3.0) < 0.3
    assert valid[inner].mean() > 0.95 and valid_back[inner].mean() > 0.95
    # the last columns of cur come from outside prev: not valid
    assert valid[:, -2:].mean() < 0.5
    aligned = warp(prev.astype(np.float32), flow)
    err = np.abs(aligned - cur.astype(np.float32))[inner]
    assert float(err.mean()) < 2.0
    # the sampling maps warp exactly as the flow does
    assert np.array_equal(warp(prev.astype(np.float32), sampling_maps(flow)), aligned)
    assert np.array_equal(FlowEstimator().backward(cur, prev)[1], valid)
