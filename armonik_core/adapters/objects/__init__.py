"""Object storage: the bytes of results and payloads, addressed by opaque id."""
