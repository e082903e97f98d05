"""Redaction: faces and plates found, tracked over time and hidden in a disclosure copy."""
