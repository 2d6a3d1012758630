from unlearn.data.base import Data, crop_flip

__all__ = ["Data", "crop_flip"]
