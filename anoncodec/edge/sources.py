"""Frame sources of the camera client: :mod:`anoncodec.frames`, the project's one frame reader.

It lives outside :mod:`anoncodec.edge` so that training data and evaluation, which may not
import the camera runtime, read frames with the same code; this module keeps
``from anoncodec.edge.sources import open_source`` working.
"""

from anoncodec.frames import (
    IMAGE_SUFFIXES,
    Frame,
    FrameSource,
    ImageFolderSource,
    LiveSource,
    VideoFileSource,
    is_image_file,
    list_images,
    natural_key,
    open_source,
    read_frames,
)

__all__ = ["Frame", "FrameSource", "VideoFileSource", "ImageFolderSource", "LiveSource", "open_source",
           "IMAGE_SUFFIXES", "is_image_file", "list_images", "natural_key", "read_frames"]
