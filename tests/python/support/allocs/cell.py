x = bytearray(10_000_000)
