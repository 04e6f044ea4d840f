"""Commands of this system (filled in as it grows)."""
