"""Uploaded pictures: one size limit, checked from the file's header before any pixel is decoded;
errors name the upload by its own file name (not the server's temporary path); previews are
downscaled before they go back to the browser."""
import functools
import os
import warnings
from typing import Optional

from PIL import Image

from mma.datasets import to_rgb

from .errors import DemoError

#: The largest picture the page accepts, in pixels (width x height): 40 megapixels, e.g.
#: 6000 x 6000. Below PIL's own decompression-bomb threshold (``Image.MAX_IMAGE_PIXELS``, ~89
#: MP), so every picture PIL warns about or refuses is over this limit too. The model sees the
#: picture at its ViT's size (224 px for CLIP) anyway.
MAX_PIXELS = 40_000_000
#: Previews are at most this many pixels wide and high (a 6000 px upload is not echoed back).
PREVIEW_SIZE = 512
#: Tiny pictures (the demo's are 32 px) are enlarged to at least this size, pixels kept.
PREVIEW_MIN = 128


def _named(err: Exception, path: str, name: str) -> str:
    """``err``'s message with the server path of the upload replaced by its file name."""
    return str(err).replace(path, name)


def check_upload(path: str, max_pixels: int = MAX_PIXELS) -> None:
    """Check the uploaded picture ``path`` once per file version: its size from the header
    (before any pixel is decoded), then that it decodes. The upload's preview and the answer
    both call this; the second call reuses the first's result.

    Raises:
        DemoError: over ``max_pixels`` (PIL's ``DecompressionBombError`` and
            ``DecompressionBombWarning`` included), or not readable as an image; the message
            names the upload by its file name.
    """
    try:
        st = os.stat(path)
    except OSError:
        raise DemoError(f'The uploaded image "{os.path.basename(path)}" is gone from the '
                        'server: upload it again.') from None
    message = _check(path, (st.st_mtime_ns, st.st_size), max_pixels)
    if message:
        raise DemoError(message)


@functools.lru_cache(maxsize=64)
def _check(path: str, version: tuple, max_pixels: int) -> Optional[str]:
    """The message for an unusable upload, or None (cached per ``(path, version)``)."""
    name = os.path.basename(path)
    limit = f'{max_pixels / 1e6:g} megapixels'
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size  # the header only: nothing decoded yet
                if width * height > max_pixels:
                    return (f'The uploaded image "{name}" is too large: {width}x{height} pixels '
                            f'({width * height / 1e6:.0f} megapixels); the demo accepts up to '
                            f'{limit}. Downscale it (the model sees it at its ViT\'s input size '
                            'anyway) and upload it again.')
                img.load()  # a truncated file fails here, not as a half-grey picture
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return (f'The uploaded image "{name}" is too large: over {limit} (PIL refuses it as a '
                'possible decompression bomb). Downscale it and upload it again.')
    except (OSError, SyntaxError, ValueError) as err:
        return (f'The uploaded image "{name}" cannot be read: it is corrupt, truncated or not an '
                f'image ({type(err).__name__}: {_named(err, path, name)}). Upload a PNG or JPEG '
                'file.')
    return None


def open_upload(path: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """:func:`check_upload`, then the picture as 8-bit RGB."""
    check_upload(path, max_pixels)
    with Image.open(path) as img:
        return to_rgb(img)


def preview(path: Optional[str], max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The picture as the page shows it: :func:`open_upload`, then at most
    :data:`PREVIEW_SIZE` px on its longer side (tiny pictures enlarged, pixels kept)."""
    img = open_upload(path, max_pixels)
    if max(img.size) > PREVIEW_SIZE:
        img.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE), Image.BILINEAR)
    elif max(img.size) < PREVIEW_MIN:
        factor = -(-PREVIEW_MIN // max(img.size))
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    return img
