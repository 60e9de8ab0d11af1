"""The share popover's QR code decodes (with OpenCV's detector, independent of the encoder) to the link itself."""
import cv2
import numpy as np

from ui.links import qr_png


def test_the_qr_code_reads_back_as_the_link():
    url = ("http://classroom.example:8501/gradcam?model=vgg16&weights=pretrained&input=224x224&sample=grace_hopper"
           "&lang=ko&layer=features.28&class=5&method=gradcam")
    png = qr_png(url)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    text, points, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert text == url
    assert qr_png(url) is png  # memoised: the sidebar redraws it on every rerun


def _children(node):
    kids = getattr(node, "children", None)
    return list(kids.values()) if isinstance(kids, dict) else list(kids or [])


def _find(node, kind):
    found = []
    for child in _children(node):
        if getattr(child, "type", "") == kind:
            found.append(child)
        found += _find(child, kind)
    return found


def test_the_qr_code_is_drawn_only_while_the_share_popover_is_open(app_factory):
    """Every widget change makes a new link, and a QR code takes a few ms to encode: a closed popover skips it.
    Opened, it shows the code of the very link printed above it."""
    from ui.links import SHARE_OPEN_KEY

    at = app_factory("home")
    share = _find(at.sidebar, "popover")[0]
    assert not _find(share, "image")
    at.session_state[SHARE_OPEN_KEY] = True
    at.run()
    share = _find(at.sidebar, "popover")[0]
    (image,) = _find(share, "image")
    (link,) = _find(share, "code")
    assert not at.exception and "model=" in link.value  # AppTest has no browser address: a relative link
