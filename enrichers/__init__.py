"""Built-in enrichers (see core/enrich/run.py for the contract). Engines sit behind adapters; heavy libraries are
imported inside the functions that use them, so a bundle without an extra never loads its code."""
