data = bytearray(1_000_000)
