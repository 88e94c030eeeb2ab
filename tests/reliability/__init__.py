"""Reliability and security: load, faults and hostile input over real sockets."""
