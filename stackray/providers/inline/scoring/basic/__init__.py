"""`inline::basic`: scoring functions computed from the rows alone."""
