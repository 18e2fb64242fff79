"""Deliver: the MIME message built once and filled per reader, the send loop, and the backends."""
