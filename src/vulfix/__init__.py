"""vulfix: a self-hosted host-vulnerability fixing service speaking the CWP 2018-02-28 API."""

__version__ = "0.1.0"
