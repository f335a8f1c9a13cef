"""azure provider."""
