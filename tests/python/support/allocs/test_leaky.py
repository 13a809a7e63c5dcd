LEAKS = []
LEAKS.append(bytearray(2_000_000))
