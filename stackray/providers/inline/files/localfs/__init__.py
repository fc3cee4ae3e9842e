"""`inline::localfs`: files in a directory on this machine."""
