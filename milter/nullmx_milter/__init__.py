"""nullmx-milter: reject recipients whose domain publishes an RFC 7505 null MX."""

__version__ = "1.0.0"
