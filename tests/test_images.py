"""Image decoding: every bad-input case gives a readable ImageLoadError; odd modes decode correctly."""
import io

import numpy as np
import pytest
from PIL import Image

from explorer.imaging import MAX_SIDE, ImageLoadError, SAMPLES, load_image, sample_image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_grace_hopper_sample_is_a_real_photo():
    img = sample_image("grace_hopper")
    assert img.mode == "RGB" and img.size == (512, 600)
    assert np.asarray(img).std() > 20


@pytest.mark.parametrize("name", list(SAMPLES))
def test_samples_decode(name):
    img = sample_image(name)
    assert img.mode == "RGB" and min(img.size) >= 64


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"])
def test_formats_roundtrip(fmt):
    img = load_image(_encode(sample_image("shapes"), fmt))
    assert img.mode == "RGB" and img.size == (256, 256)


@pytest.mark.parametrize("data,needle", [
    (b"", "empty"),
    (b"hello, this is text with a .png name", "not an image"),
    (_encode(Image.new("RGB", (64, 64), "red"), "JPEG")[:200], "corrupt or truncated"),
    (_encode(Image.new("RGB", (300, 300), "red"), "PNG")[:-40], "corrupt or truncated"),
])
def test_bad_files_have_clear_messages(data, needle):
    with pytest.raises(ImageLoadError, match=needle):
        load_image(data)


def _jpeg_with_text_image_width() -> bytes:
    """A JPEG whose EXIF (orientation 6) holds ImageWidth as ASCII text: Pillow's transpose fails with struct.error."""
    exif = Image.Exif()
    exif[0x010F] = "Cam"
    exif[0x0112] = 6
    data = bytearray(_encode_with(Image.new("RGB", (40, 30), (200, 100, 50)), "JPEG", exif=exif.tobytes()))
    i = data.index(b"\x01\x0f\x00\x02")  # the Make tag (0x010F, ASCII) becomes ImageWidth (0x0100)
    data[i + 1] = 0x00
    return bytes(data)


def _tiff_with_a_broken_second_page() -> bytes:
    """A TIFF whose next-IFD offset points into its pixels: Pillow fails with TypeError."""
    import struct

    data = bytearray(_encode(Image.new("RGB", (40, 30), (200, 100, 50)), "TIFF"))
    first = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * entries, 16)
    return bytes(data)


def _encode_with(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [_jpeg_with_text_image_width, _tiff_with_a_broken_second_page])
def test_crafted_files_that_break_the_decoder_are_refused_clearly(make):
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_image(make())


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _encode(Image.new("1", (12000, 12000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(ImageLoadError, match="too large|bomb"):
        load_image(bomb)


def test_sixteen_bit_is_scaled_by_its_real_range():
    ramp = np.linspace(1000, 3000, 64 * 64).reshape(64, 64).astype(np.uint16)
    img = load_image(_encode(Image.fromarray(ramp), "PNG"))
    arr = np.asarray(img)[..., 0].astype(int)
    assert arr.min() == 0 and arr.max() == 255  # a plain convert('RGB') would saturate to white
    assert np.all(np.diff(arr.reshape(-1)) >= 0)


def test_float_tiff_is_scaled():
    data = np.linspace(-1.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    img = load_image(_encode(Image.fromarray(data, "F"), "TIFF"))
    arr = np.asarray(img)[..., 0]
    assert arr[0, 0] == 0 and arr[-1, -1] == 255


def test_cmyk_palette_and_alpha():
    cmyk = load_image(_encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"))
    r, g, b = np.asarray(cmyk)[20, 20]
    assert r > 200 and g < 60 and b < 60
    palette = load_image(_encode(Image.new("RGB", (40, 40), (0, 0, 255)).convert("P"), "PNG"))
    assert tuple(np.asarray(palette)[0, 0]) == (0, 0, 255)
    transparent = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    assert tuple(np.asarray(load_image(_encode(transparent, "PNG")))[0, 0]) == (255, 255, 255)


def test_animated_gif_keeps_first_frame_and_says_so():
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = load_image(buf.getvalue())
    r, g, b = np.asarray(img)[0, 0]
    assert r > 200 and g < 50
    assert "first of 3 frames" in img.info["explorer_note"]


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (60, 30), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    out = load_image(_encode(img, "JPEG", exif=exif))
    assert out.size == (30, 60)


def test_tiny_and_thin_images():
    assert load_image(_encode(Image.new("RGB", (1, 1), "red"), "PNG")).size == (1, 1)
    with pytest.raises(ImageLoadError, match="aspect ratio"):
        load_image(_encode(Image.new("RGB", (10000, 1), "red"), "PNG"))


def test_large_images_are_bounded():
    img = load_image(_encode(Image.new("RGB", (4000, 3000), "red"), "PNG"))
    assert max(img.size) == MAX_SIDE and "downscaled" in img.info["explorer_note"]


def test_missing_path():
    with pytest.raises(ImageLoadError, match="no such image"):
        load_image("/nonexistent/picture.png")


@pytest.mark.parametrize("size,mode", [((512, 600), "RGB"), ((2000, 300), "RGB"), ((100, 80), "L"), ((900, 900), "RGBA")])
def test_preview_picture_is_the_image_shrunk_and_encoded_once(size, mode):
    """A picture encoded once for the screen (the app's sidebar and Home use ``max_side=1024``): at most the default
    640 px on its long side, aspect kept, opaque pictures as JPEG, transparent ones as PNG, and the same picture
    (against PIL's own resize of the original)."""
    from explorer.imaging import preview_picture

    rng = np.random.default_rng(3)
    h, w = size[1], size[0]
    cell = max(size) // 8  # colour blocks that stay ~80 px wide in the preview (JPEG blurs only their edges)
    smooth = np.kron(rng.integers(0, 256, (h // cell + 1, w // cell + 1, 4)), np.ones((cell, cell, 1)))[:h, :w]
    smooth = smooth.astype(np.uint8)
    img = Image.fromarray(smooth, "RGBA").convert(mode)
    data, kind = preview_picture(img)
    shown = Image.open(io.BytesIO(data))
    assert kind == ("PNG" if mode == "RGBA" else "JPEG") and shown.format == kind
    scale = min(1.0, 640 / max(size))
    assert max(shown.size) == round(max(size) * scale)
    assert abs(shown.size[0] / shown.size[1] - size[0] / size[1]) < 0.02 * size[0] / size[1] + 0.02
    expected = np.asarray(img.resize(shown.size, Image.Resampling.LANCZOS), dtype=np.float64)
    got = np.asarray(shown.convert(mode), dtype=np.float64)
    assert np.abs(got - expected).mean() < 8  # JPEG's loss on sharp colour edges; a wrong picture is off by ~80


@pytest.mark.parametrize("level, grey", [(65535, 255), (40000, 156), (0, 0)])
def test_a_uniform_sixteen_bit_image_keeps_its_level(level, grey):
    """No range to stretch: the level's place on the 16-bit scale (it used to load all black)."""
    img = load_image(_encode(Image.fromarray(np.full((20, 20), level, np.uint16)), "PNG"))
    assert np.unique(np.asarray(img)).tolist() == [grey] == [round(level / 257)]


@pytest.mark.parametrize("mode, key", [("RGB", (0, 0, 0)), ("L", 0)])
def test_a_png_colour_key_is_composited_on_white(mode, key):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (255, 0, 0)  # top red, bottom black: black is the transparent colour
    img = Image.fromarray(rgb, "RGB") if mode == "RGB" else Image.fromarray(rgb[..., 0], "L")
    loaded = np.asarray(load_image(_encode_with(img, "PNG", transparency=key)))
    top = (255, 0, 0) if mode == "RGB" else (255, 255, 255)  # L: the red row is 255 grey
    assert (loaded[:4] == top).all() and (loaded[4:] == 255).all()  # the black key became white
