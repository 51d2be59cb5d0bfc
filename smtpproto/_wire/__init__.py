"""The wire layer: bytes and values, no state (replies, commands, addresses, the encoding of
message data, SASL)."""
