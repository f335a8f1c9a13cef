"""Entry points only: compose one provider with core, delegate, translate the Outcome to the platform's signal."""
