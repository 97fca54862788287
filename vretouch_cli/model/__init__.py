"""The VRetouchEr network, layers only (no file I/O, no device choice).

- ``config``: :class:`ModelConfig` and the presets (tiny, small, base, paper);
- ``encoder`` (E), ``localize`` (N and the mask head I), ``flow`` (S), ``fir`` (FIR),
  ``mma`` (the MMA transformer), ``decoder`` (G), ``discriminator`` (D, training only);
- ``network``: :class:`VRetouchEr` (per-frame parts + window part) and :class:`VROutput`;
- ``summary``: parameters and GMAC of a config, counted on the meta device;
- ``transfer``: a class-head model's state dict from class-less weights (``train --init``).
"""
