# SPDX-License-Identifier: Apache-2.0
"""easfast's compiled core: endpoint selection and the tensor codec.

No I/O, no logging and no threads live here. Each concept is kept in its own
included file, and each file uses only names from the files included before
it:

- ``_selector.pxi``: endpoints, snapshots, smooth weighted round robin.
- ``_wire.pxi``: protobuf wire format, the C-level writers and readers.
- ``_dtypes.pxi``: the DT_* codes, their numpy dtypes and value fields.
- ``_tensor.pxi``: one numpy array to and from one ArrayProto message.
- ``_messages.pxi``: the TensorFlow and PyTorch request and response
  messages, the public ``encode_*`` and ``decode_*`` functions.

The codec writes and reads protobuf bytes itself, without the protobuf
runtime. Each file cimports the C declarations it uses. The Python names that
several files share (numpy and the exceptions) are imported once, here.
"""

cimport cython

import numpy as np

from easfast.exceptions import DecodeError, EncodeError, NoEndpointsError

include "_selector.pxi"
include "_wire.pxi"
include "_dtypes.pxi"
include "_tensor.pxi"
include "_messages.pxi"
