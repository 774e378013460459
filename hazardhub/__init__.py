"""The composition root of hazardhub: CLI, settings loading, process wiring."""

__all__: list[str] = []
