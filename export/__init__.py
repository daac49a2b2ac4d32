"""torch → ONNX (checked, with parity against torch and a manifest) and ONNX → TensorRT engine files."""
