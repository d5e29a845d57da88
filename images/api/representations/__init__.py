"""One module per resource with its XML, JSON and HTML forms (see base.py)."""
