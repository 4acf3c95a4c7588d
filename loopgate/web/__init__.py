"""The HTTP surfaces of the one aiohttp application, one module per surface."""
