"""Evaluation: metrics, the ``vretouch eval`` runners, reports and plots.

- :mod:`.metrics`: PSNR, SSIM (scikit-image-exact, optionally face-weighted), the ground-truth
  imperfection map and Soft-IoU (numpy + cv2 only; training imports ``GT_MAP_SCALE`` and
  ``gt_imperfection_map`` from here).
- :mod:`.lpips`: LPIPS v0.1 with AlexNet / VGG-16 from safetensors weights.
- :mod:`.temporal`: flow-warped frame differences and the flicker index (DIS flow on the reference).
- :mod:`.scoring`: per-frame and per-clip scores of several methods (raw, single-frame, VRetouchEr).
- :mod:`.data`: the MRFV and FFHQR folder layouts; :mod:`.mrfv` and :mod:`.ffhqr`: the runners.
- :mod:`.report` (JSON, CSV) and :mod:`.plots` (PNG per clip).
"""
