"""The anyio core of lmstudio-sdk (transports, connection, client).

Kept free of imports on purpose: importing a submodule must not load the other backends.
"""
