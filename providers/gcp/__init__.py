"""gcp provider."""
