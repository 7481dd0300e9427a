"""The only code that talks to MongoDB, Redis and S3 (and supervises their embedded servers)."""
