"""The python rows: conformance/PROTOCOL.md over que (threads: python, python-sessions,
python-batch; asyncio: python-async), and broken variants of it that the suite's own tests
use to see each rule fail."""
