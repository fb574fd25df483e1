"""Command line interface (``anoncodec --help``)."""

__all__: list[str] = []
