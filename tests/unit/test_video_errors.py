"""Bad inputs raise InputError, bad outputs OutputError; failures leave nothing behind."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from vretouch_cli.errors import InputError, OutputError
from vretouch_cli.video import check_output_path, open_sink, open_source
from vretouch_cli.video.testclips import make_frames, write_test_audio, write_test_video

FAST = {"preset": "ultrafast"}


@pytest.fixture()
def clip(tmp_path):
    return write_test_video(tmp_path / "clip.mp4", make_frames(8, 64, 48), audio="aac")


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def assert_one_line(err, *words):
    text = str(err.value)
    assert "\n" not in text
    for w in words:
        assert w in text, text


# -- inputs


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "nope.mp4")
    assert_one_line(e, "nope.mp4", "no such file")


def test_folder_without_images(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    with pytest.raises(InputError) as e:
        open_source(folder)
    assert_one_line(e, "frames", "no image files")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "empty.mp4")
    assert_one_line(e, "empty.mp4", "empty")


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "notes.mp4")
    assert_one_line(e, "notes.mp4", "not a readable video")


def test_truncated_mp4(tmp_path, clip):
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov at the end: lost
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "cut.mp4")
    assert_one_line(e, "cut.mp4", "truncated")


def test_truncated_faststart_mp4(tmp_path, clip):
    """Our own outputs have the index first (faststart): cut short, the index outlives the data."""
    fast = tmp_path / "fast.mp4"
    with open_source(clip) as s, open_sink(fast, s, **FAST) as sink:
        for f in s:
            sink.write(f)
    data = fast.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "cut.mp4")
    assert_one_line(e, "cut.mp4", "truncated")


@pytest.mark.parametrize("name", ["audio.m4a", "audio.mp4"])
def test_audio_only_file(tmp_path, name):
    write_test_audio(tmp_path / name)
    with pytest.raises(InputError) as e:
        open_source(tmp_path / name)
    assert_one_line(e, name, "no video stream")


def test_undecodable_first_frame(tmp_path, clip):
    import av  # tests of video/ may use PyAV directly

    with av.open(str(clip)) as c:
        first = next(p for p in c.demux(video=0) if p.size)
        pos, size = first.pos, first.size
    data = bytearray(clip.read_bytes())
    data[pos : pos + size] = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "bad.mp4")
    assert_one_line(e, "bad.mp4", "first video frame")


def test_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "broken.png")
    assert_one_line(e, "broken.png", "image")


def test_bad_range(tmp_path, clip):
    with pytest.raises(InputError, match="past the end"):
        open_source(clip, start=30)
    with pytest.raises(InputError, match="duration"):
        open_source(clip, duration=0)


# -- outputs


def test_output_folder_missing(tmp_path, clip):
    out = tmp_path / "missing" / "out.mp4"
    with pytest.raises(OutputError) as e:
        check_output_path(clip, out, overwrite=False)
    assert_one_line(e, "does not exist")
    assert not out.parent.exists()


def test_output_folder_not_writable(tmp_path, clip, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: simulate the refusal
            import tempfile

            def refuse(*a, **k):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(tempfile, "mkstemp", refuse)
        with pytest.raises(OutputError) as e:
            check_output_path(clip, ro / "out.mp4", overwrite=True)
        assert_one_line(e, "not writable")
    finally:
        ro.chmod(0o755)
    assert names(ro) == []


def test_output_equals_input(tmp_path, clip):
    for same in (clip, tmp_path / "." / "clip.mp4"):
        with pytest.raises(OutputError) as e:
            check_output_path(clip, same, overwrite=True)
        assert_one_line(e, "same file as the input")
    link = tmp_path / "link.mp4"
    os.link(clip, link)  # another name for the same file
    with pytest.raises(OutputError, match="same file"):
        check_output_path(clip, link, overwrite=True)


def test_existing_output_needs_overwrite(tmp_path, clip):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    with pytest.raises(OutputError) as e:
        check_output_path(clip, out, overwrite=False)
    assert_one_line(e, "exists", "--overwrite")
    assert out.read_bytes() == b"old"
    assert check_output_path(clip, out, overwrite=True) == out


def test_existing_folder_with_other_files_is_not_replaced(tmp_path, clip):
    out = tmp_path / "frames_out"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    with pytest.raises(OutputError, match="other than frames"):
        check_output_path(clip, out, overwrite=True)


def test_unsupported_output_suffix(tmp_path, clip):
    with open_source(clip) as s:
        with pytest.raises(OutputError, match="unsupported output"):
            open_sink(tmp_path / "out.avi", s)
    assert names(tmp_path) == ["clip.mp4"]


# -- failures while writing leave nothing


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".png", ""])
def test_exception_while_writing_leaves_nothing(tmp_path, clip, exc, suffix):
    src = clip
    if suffix == ".png":  # an image output takes a still image
        import cv2

        src = tmp_path / "still.jpg"
        cv2.imwrite(str(src), make_frames(1, 64, 48)[0])
    before = names(tmp_path)
    out = tmp_path / f"out{suffix}"
    with open_source(src) as s:
        with pytest.raises(exc):
            with open_sink(out, s, **FAST) as sink:
                for f in s:
                    sink.write(f)
                    if f.index == 0:
                        assert any("vretouch-tmp" in n for n in names(tmp_path)) or suffix == ".png"
                        raise exc()
    assert names(tmp_path) == before


def test_existing_output_survives_a_failed_run(tmp_path, clip):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with open_source(clip) as s:
        with pytest.raises(RuntimeError):
            with open_sink(out, s, **FAST) as sink:
                sink.write(next(iter(s)))
                raise RuntimeError
    assert out.read_bytes() == b"previous result"
    assert names(tmp_path) == ["clip.mp4", "out.mp4"]


def test_commit_replaces_and_abort_is_idempotent(tmp_path, clip):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with open_source(clip) as s:
        sink = open_sink(out, s, **FAST)
        for f in s:
            sink.write(f)
        sink.commit()
        sink.abort()  # after commit: no effect
    assert out.stat().st_size > 1000
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # normal file mode, not mkstemp's
    assert names(tmp_path) == ["clip.mp4", "out.mp4"]


def test_no_frames_written_is_an_error(tmp_path, clip):
    out = tmp_path / "out.mp4"
    with open_source(clip) as s:
        with pytest.raises(OutputError, match="no frames"):
            with open_sink(out, s, **FAST):
                pass
    assert names(tmp_path) == ["clip.mp4"]


def test_forgotten_sink_removes_its_temporary(tmp_path, clip):
    with open_source(clip) as s:
        sink = open_sink(tmp_path / "out.mp4", s, **FAST)
        sink.write(next(iter(s)))
        del sink
        gc.collect()
    assert names(tmp_path) == ["clip.mp4"]


def test_wrong_frame_size_is_refused(tmp_path, clip):
    from vretouch_cli.video import Frame

    with open_source(clip) as s:
        with pytest.raises(ValueError, match="does not match"):
            with open_sink(tmp_path / "out.mp4", s, **FAST) as sink:
                sink.write(Frame(0, 0, s.info.time_base, np.zeros((10, 10, 3), np.uint8)))
    assert names(tmp_path) == ["clip.mp4"]
