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
