"""seam-harness: SEAM backdoor removal over TrojAI-style rounds."""

__version__ = "0.1.0"
