# Tensor codec: numpy arrays to and from TF and PyTorch protobuf bytes.
