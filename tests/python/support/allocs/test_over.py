data = bytearray(8_000_000)
