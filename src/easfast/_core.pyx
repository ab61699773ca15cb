# SPDX-License-Identifier: Apache-2.0
"""easfast's compiled core: endpoint selection and the tensor codec.

No I/O, no logging and no threads live here. The selector and the codec are
kept in two included files so that each reads top to bottom on its own:
``_selector.pxi`` (endpoints, snapshots, smooth weighted round robin) and
``_codec.pxi`` (numpy arrays to and from protobuf bytes).
"""

cimport cython

from easfast.exceptions import DecodeError, EncodeError, NoEndpointsError

include "_selector.pxi"
include "_codec.pxi"
