"""The domain: shares, their cryptography, where their bytes and records live; no Quart."""
