# A script with known allocations (line numbers are asserted by the tests).
import os
import threading


def make():
    return bytearray(10_000_000)


def churn():
    for _ in range(1000):
        bytearray(5000)


def worker():
    global kept
    kept = bytearray(3_000_000)


keep = make()
churn()
t = threading.Thread(target=worker, name="worker")
t.start()
t.join()
leak = bytearray(2_000_000)
del keep, kept
print(os.getpid())
