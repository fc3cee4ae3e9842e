"""`inline::localfs`: dataset rows from local files, data: URIs, http(s) files and inline rows."""
