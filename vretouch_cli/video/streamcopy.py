"""Copy audio and subtitle streams packet for packet (remux, no re-encode)."""

from __future__ import annotations

import io
import logging
from fractions import Fraction
from pathlib import Path

import av
from av.stream import Discard

log = logging.getLogger(__name__)

COPIED_TYPES = ("audio", "subtitle")

# Container-level tags that describe the old file rather than its content.
_DROP_CONTAINER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder"}
# Stream tags that would be stale after a remux (Matroska statistics, encoder names).
_DROP_STREAM_TAGS = {"encoder", "vendor_id", "duration", "number_of_frames", "number_of_bytes", "bps"}


def copyable_metadata(tags: dict, stream: bool = True) -> dict:
    """The tags worth carrying over to a remuxed file (language, title, creation time...)."""
    drop = _DROP_STREAM_TAGS if stream else _DROP_CONTAINER_TAGS
    kept = {
        k: v
        for k, v in tags.items()
        if k.lower() not in drop and not k.upper().startswith("_STATISTICS") and k.upper() != "DURATION"
    }
    # The MP4/MOV demuxer reads a track title back as "name"; muxers take "title".
    if stream and "name" in kept and "title" not in kept:
        kept["title"] = kept.pop("name")
    return kept


def _muxable(format_name: str, template) -> str | None:
    """None when ``format_name`` can store ``template``'s codec, else the reason it cannot."""
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as probe:
            probe.add_stream_from_template(template)
            probe.start_encoding()
    except (av.FFmpegError, ValueError, NotImplementedError) as e:
        return str(e) or type(e).__name__
    return None


class StreamCopier:
    """Remuxes every audio and subtitle stream of ``src`` into ``out``.

    Packets are copied as they are (payload, flags, side data); only their timestamps
    move when the source was trimmed, by ``offset`` seconds, and packets outside
    ``[range_start, range_end)`` are left out. The sink calls :meth:`copy_until` before
    each video packet so that the file is interleaved and memory stays bounded.
    """

    def __init__(self, src: Path, out, range_start: float | None = None, range_end: float | None = None):
        self._in = av.open(str(src), mode="r", metadata_errors="replace")
        self._out = out
        self._map: dict[int, object] = {}
        self.skipped: list[str] = []
        self.range_start = range_start
        self.range_end = range_end
        # Known once the sink has the first frame (only when a start was asked for).
        self.offset: Fraction | None = None if range_start is not None else Fraction(0)
        fmt = out.format.name.split(",")[0]
        selected = []
        for s in self._in.streams:
            if s.type not in COPIED_TYPES:
                s.discard = Discard.all  # do not even read video/data packets
                continue
            cc = s.codec_context
            name = (getattr(cc.codec, "canonical_name", None) or cc.name) if cc is not None else "unknown"
            why = _muxable(fmt, s)
            if why is not None:
                msg = f"{s.type} stream #{s.index} ({name}) cannot be stored in {fmt}; left out"
                log.warning("%s", msg)
                self.skipped.append(msg)
                s.discard = Discard.all
                continue
            o = out.add_stream_from_template(s)
            o.metadata.update(copyable_metadata(dict(s.metadata)))
            try:
                o.disposition = int(s.disposition)
            except Exception:  # noqa: BLE001 - cosmetic
                pass
            self._map[s.index] = o
            selected.append(s)
        self._packets = None
        self._pending = None
        self._done = not selected
        if selected:
            if range_start:
                self._in.seek(int(range_start * 1_000_000), backward=True)
            self._packets = self._in.demux(*selected)

    @property
    def streams(self) -> list:
        return list(self._map.values())

    def set_offset(self, seconds: Fraction) -> None:
        """Shift copied packets back by ``seconds`` (the trimmed video's first pts)."""
        self.offset = Fraction(seconds)

    def copy_until(self, t: Fraction | None) -> None:
        """Mux every pending packet whose decode time is <= ``t`` seconds (None: all)."""
        while not self._done:
            pk = self._pending
            if pk is None:
                pk = next(self._packets, None)
                if pk is None:
                    self._done = True
                    return
            ts = pk.dts if pk.dts is not None else pk.pts
            if ts is None:  # demuxer flush packets
                self._pending = None
                continue
            if t is not None and ts * pk.time_base - (self.offset or 0) > t:
                self._pending = pk
                return
            self._pending = None
            self._emit(pk)

    def _emit(self, pk) -> None:
        tb = pk.time_base
        pts = pk.pts if pk.pts is not None else pk.dts
        when = pts * tb
        if self.range_start is not None and when < (self.offset if self.offset is not None else self.range_start):
            return  # before the first video frame of the selected range
        if self.range_end is not None and when >= self.range_end:
            return
        if self.offset:
            shift = round(self.offset / tb)
            if pk.pts is not None:
                pk.pts -= shift
            if pk.dts is not None:
                pk.dts -= shift
        out_stream = self._map[pk.stream_index]
        if out_stream.type == "subtitle" and pk.size == 2 and bytes(pk) == b"\x00\x00":
            return  # an empty mov_text gap sample: the MP4 muxer writes its own gaps
        pk.stream = out_stream
        self._out.mux(pk)

    def close(self) -> None:
        self._packets = None
        self._in.close()
