"""Cloud drivers. Plain Python: nothing here may import Django."""
