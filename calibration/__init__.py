"""Camera intrinsics and INT8 calibration."""
