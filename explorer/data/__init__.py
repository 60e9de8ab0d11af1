"""Datasets for the training lab: built-in shapes, torchvision sets and the user's photos, as uint8 tensors."""
from explorer.data.bundle import DataBundle, ImageTensors, channel_stats, data_root
from explorer.data.digits import DIGIT_CLASSES, digits_split_indices, load_digits_bundle
from explorer.data.datasets import BUILTIN_DATASETS, LIBRARY_UPLOADS, dataset_label, extracted_zip, load_dataset
from explorer.data.folders import MAX_FOLDER_BYTES, load_image_folder
from explorer.data.roots import DATA_ROOTS_ENV, FolderNotAllowedError, allowed_data_roots, confine_data_folder
from explorer.data.splits import (SPLITS, FolderScan, Skipped, SplitResult, homework_split_counts, scan_image_folder,
                                  split_comparison, split_counts, split_image_folder, train_valid_test_counts)
from explorer.data.synthetic import DEFAULT_SHAPES_SAMPLES, SHAPE_CLASSES, load_shapes, make_shapes, render_shape
from explorer.data.torchvision_sets import (DISPLAY_NAMES, TORCHVISION_DATASETS, DatasetUnavailableError,
                                            fit_tensor_images, load_torchvision, network_reachable, torchvision_status)
from explorer.data.zips import MAX_ZIP_MEMBERS, MAX_ZIP_RATIO, MAX_ZIP_TOTAL_BYTES, ZIP_MAX_ENV, ZipTargetExistsError, extract_zip, zip_total_limit
from explorer.data.zips import UPLOADS_MAX_ENV, UPLOADS_TTL_ENV, clean_extractions, extraction_complete, zip_listing

__all__ = [
    "DATA_ROOTS_ENV", "FolderNotAllowedError", "allowed_data_roots", "confine_data_folder",
    "BUILTIN_DATASETS", "DEFAULT_SHAPES_SAMPLES", "DIGIT_CLASSES", "digits_split_indices", "load_digits_bundle", "DISPLAY_NAMES", "DataBundle", "DatasetUnavailableError",
    "FolderScan", "ImageTensors", "MAX_FOLDER_BYTES", "MAX_ZIP_MEMBERS", "MAX_ZIP_RATIO", "MAX_ZIP_TOTAL_BYTES",
    "SHAPE_CLASSES", "SPLITS", "Skipped", "SplitResult", "TORCHVISION_DATASETS", "channel_stats", "data_root",
    "dataset_label", "extract_zip", "homework_split_counts", "split_comparison", "fit_tensor_images", "load_dataset", "load_image_folder", "load_shapes",
    "load_torchvision", "make_shapes", "network_reachable", "render_shape", "scan_image_folder", "split_counts",
    "split_image_folder", "torchvision_status", "UPLOADS_MAX_ENV", "UPLOADS_TTL_ENV", "clean_extractions", "ZIP_MAX_ENV", "ZipTargetExistsError", "zip_total_limit",
    "LIBRARY_UPLOADS", "extracted_zip", "extraction_complete", "zip_listing", "train_valid_test_counts",
]
